package message

import (
	"testing"

	"github.com/gofedmsg/fedmsg/internal/sharedtest"
)

func BenchmarkCanonicalizeBytes(b *testing.B) {
	data := sharedtest.Read(b, "fedmsg-x509", "signed", "v02-unicode.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CanonicalizeBytes(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data := sharedtest.Read(b, "fedmsg-x509", "signed", "v02-unicode.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonical(b *testing.B) {
	v, err := Decode(sharedtest.Read(b, "fedmsg-x509", "signed", "v03-nested.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	buf := make([]byte, 0, 4096)
	for b.Loop() {
		if buf, err = AppendCanonical(buf[:0], v); err != nil {
			b.Fatal(err)
		}
	}
}
