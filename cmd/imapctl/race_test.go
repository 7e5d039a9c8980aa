//go:build race

package main

// raceEnabled reports whether the tests run with the race detector; the
// server binary the tests build then gets it too.
const raceEnabled = true
