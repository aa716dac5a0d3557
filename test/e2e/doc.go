// Package e2e holds end-to-end tests that build the gregor binary, run it as
// a child process and drive it with the franz-go client over TCP: crash
// (kill -9) and clean restarts, torn segment tails.
package e2e
