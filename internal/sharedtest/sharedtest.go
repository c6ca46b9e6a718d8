// Package sharedtest finds the vectors made by the real Python fedmsg in
// ../shared/testdata, beside the checkout, so that every test checks
// byte-compatibility against them rather than against our own output.
package sharedtest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the absolute path of shared/testdata joined with elem. A test
// that calls it fails (never skips) when the folder is missing: the vectors
// are what byte-compatibility is judged by.
func Dir(tb testing.TB, elem ...string) string {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatalf("sharedtest: %v", err)
	}
	dir := filepath.Join(append([]string{root, "..", "shared", "testdata"}, elem...)...)
	if _, err := os.Stat(dir); err != nil {
		tb.Fatalf("sharedtest: the fedmsg test vectors are missing (expected beside the checkout): %v", err)
	}
	return dir
}

// Read returns the bytes of one vector file under shared/testdata.
func Read(tb testing.TB, elem ...string) []byte {
	tb.Helper()
	data, err := os.ReadFile(Dir(tb, elem...))
	if err != nil {
		tb.Fatalf("sharedtest: %v", err)
	}
	return data
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
