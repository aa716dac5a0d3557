// Package lint holds the project's own checks as tests: the import rules
// that keep the package layout a picture of the architecture.
package lint
