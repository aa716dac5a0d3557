// Package bench owns Gregor's load generator: the producer, consumer and
// end-to-end latency runs behind `gregor bench`, and the statistics they
// report (a log-linear latency histogram and throughput summaries).
//
// It is a Kafka client (franz-go kgo/kadm) and knows nothing about the
// broker's internals, so the same run can be pointed at gregor, at Kafka, or
// at an in-memory kfake cluster and the numbers compared side by side.
//
// Latency under a target rate (--rate) is measured from each record's
// intended send time, start + i/rate, not from the moment the client got
// round to sending it: a stall in the broker then shows up in the latency of
// every record that should have been sent during the stall (no coordinated
// omission, the method of wrk2 and HdrHistogram). The intended time travels
// with the record at full precision, not in its Timestamp, which the client
// truncates to milliseconds. It includes the load generator's own lateness
// (a timer that fires late on a busy core), so it is an upper bound on what
// the broker adds.
//
// It must not start goroutines it does not stop: every run owns its clients,
// its producer goroutines and its progress ticker, and returns only after all
// of them have finished.
package bench
