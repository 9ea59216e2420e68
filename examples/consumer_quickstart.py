"""Print every change of one Unsilo topic: its op, key and after-image.

    python examples/consumer_quickstart.py unsilo.raw.sales.customers \
        --bootstrap 127.0.0.1:9092 --registry http://127.0.0.1:8081/apis/ccompat/v7
"""

import argparse
import json
import time

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("topic")
parser.add_argument("--bootstrap", default="127.0.0.1:9092")
parser.add_argument("--registry", default="http://127.0.0.1:8081/apis/ccompat/v7")
parser.add_argument("--group", default="quickstart")
parser.add_argument("--stop-after-idle", type=float, help="exit after this many seconds without a record")
args = parser.parse_args()

# Subjects are <topic>-key and <topic>-value (TopicNameStrategy): say so, as the client's
# default strategy first asks the registry for subject associations, which not every
# Confluent-compatible registry answers.
registry = SchemaRegistryClient({"url": args.registry, "timeout": 20})
avro = AvroDeserializer(registry, conf={"subject.name.strategy": topic_subject_name_strategy})
consumer = Consumer(
    {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",  # a new group starts from the first change
        "isolation.level": "read_committed",  # only changes of committed transactions
    }
)
consumer.subscribe([args.topic])
last_record = time.monotonic()
try:
    while args.stop_after_idle is None or time.monotonic() - last_record < args.stop_after_idle:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            raise SystemExit(f"consumer error: {message.error()}")
        last_record = time.monotonic()
        key = avro(message.key(), SerializationContext(args.topic, MessageField.KEY))
        if message.value() is None:  # the tombstone that follows a delete
            print("tombstone", json.dumps(key), flush=True)
            continue
        change = avro(message.value(), SerializationContext(args.topic, MessageField.VALUE))
        print(change["op"], json.dumps(key), json.dumps(change["after"], default=str), flush=True)
finally:
    consumer.close()
