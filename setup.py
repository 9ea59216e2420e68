"""Only the optional C extensions live here; everything else is in pyproject.toml.

hub/_avro_native.c encodes Avro about 10x faster than the Python encoder it mirrors;
connectors/_mysql_rows.c decodes MySQL result rows several times faster than PyMySQL;
hub/_chain_native.c links the audit hash chain with OpenSSL's SHA-256. All three are
optional: where no C compiler or Python headers (or, for the chain, OpenSSL's headers) are
present, the install goes on and the same work is done in Python (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("hub._avro_native", ["hub/_avro_native.c"], optional=True, extra_compile_args=["-O2"]),
        Extension(
            "hub._chain_native",
            ["hub/_chain_native.c"],
            optional=True,
            libraries=["crypto"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "connectors._mysql_rows", ["connectors/_mysql_rows.c"], optional=True, extra_compile_args=["-O2"]
        ),
    ]
)
