// Package archtest holds no code, only the tests that hold the code to
// its map: docs/ARCHITECTURE.md's package table against the real imports,
// and the house rules a reviewer would otherwise check by eye. Each
// failure says what to change and where.
package archtest
