"""Only the optional C extension lives here; everything else is in pyproject.toml.

hub/_avro_native.c encodes Avro about 10x faster than the Python encoder it mirrors. It is
optional: where no C compiler or Python headers are present, the install goes on and the hub
runs on hub/avro_codec.py (same bytes, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("hub._avro_native", ["hub/_avro_native.c"], optional=True, extra_compile_args=["-O2"]),
    ]
)
