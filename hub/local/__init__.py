"""The local Kafka broker and Apicurio schema registry run by ``unsilo up`` (no Docker needed).

Both are real JVM services resolved from Maven Central and run with the machine's Java 17:
:mod:`hub.local.kafka` (one KRaft node), :mod:`hub.local.registry` (Apicurio, its storage a
Kafka topic on that broker) and :mod:`hub.local.stack` (start, stop and list them together).
"""
