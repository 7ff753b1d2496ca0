// Package broker holds the log's end-to-end conformance suite: it runs real
// `sluice serve` processes and checks them with real Kafka clients (franz-go,
// kcat/librdkafka, confluent-kafka-python) for what any sluice build must
// guarantee: nothing acknowledged is lost across kill -9, records come back
// in order exactly once, and third-party clients interoperate unchanged.
package broker
