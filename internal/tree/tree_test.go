package tree

import "testing"

func TestInt(t *testing.T) {
	for _, tc := range []struct {
		v             any
		n             int
		whole, number bool
	}{
		{3, 3, true, true},
		{int64(-2), -2, true, true},
		{4.0, 4, true, true},
		{0.5, 0, false, true},
		{"7", 0, false, false},
		{nil, 0, false, false},
	} {
		n, whole, number := Int(tc.v)
		if n != tc.n || whole != tc.whole || number != tc.number {
			t.Errorf("Int(%#v) = %d, %v, %v; want %d, %v, %v", tc.v, n, whole, number, tc.n, tc.whole, tc.number)
		}
	}
}

func TestTypeName(t *testing.T) {
	for v, want := range map[any]string{"s": "a string", true: "a boolean", 1: "a number", 1.5: "a number"} {
		if got := TypeName(v); got != want {
			t.Errorf("TypeName(%#v) = %q, want %q", v, got, want)
		}
	}
	if TypeName(nil) != "nothing" || TypeName([]any{}) != "a list" || TypeName(map[string]any{}) != "a map" {
		t.Error("TypeName of nil, a list or a map is wrong")
	}
}
