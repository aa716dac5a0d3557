// Package e2e holds end-to-end tests that build the gregor binary, run it as
// a child process and drive it with the franz-go client over TCP: crash
// (kill -9) and clean restarts, torn segment tails. A failed test prints
// the nodes' logs (and a client's debug log where the test keeps one);
// GREGOR_TEST_LOG=1 prints them when it passes too.
package e2e
