package maildir

import (
	"strings"
	"testing"
	"time"
)

func TestParseFileName(t *testing.T) {
	for _, c := range []struct {
		name string
		want fileName
		str  string // String() of the parsed name
	}{
		{
			name: "1700000000.M1P2Q3.host,S=1234:2,S",
			want: fileName{Base: "1700000000.M1P2Q3.host,S=1234", Bits: bitSeen, Size: 1234},
			str:  "1700000000.M1P2Q3.host,S=1234:2,S",
		},
		{
			name: "1700000000.M1P2Q3.host:2,DFPRST",
			want: fileName{Base: "1700000000.M1P2Q3.host", Bits: bitDraft | bitFlagged | bitPassed | bitAnswered | bitSeen | bitDeleted, Size: -1},
			str:  "1700000000.M1P2Q3.host:2,DFPRST",
		},
		{
			name: "1700000000.M1P2Q3.host:2,",
			want: fileName{Base: "1700000000.M1P2Q3.host", Size: -1},
			str:  "1700000000.M1P2Q3.host:2,",
		},
		{
			// As delivered to new/: no info at all.
			name: "1700000000.M1P2Q3.host,S=99,W=101",
			want: fileName{Base: "1700000000.M1P2Q3.host,S=99,W=101", Size: 99},
			str:  "1700000000.M1P2Q3.host,S=99,W=101:2,",
		},
		{
			// Keyword letters, out of order.
			name: "b:2,zaSc",
			want: fileName{Base: "b", Bits: bitSeen, Kw: 1<<25 | 1 | 1<<2, Size: -1},
			str:  "b:2,Sacz",
		},
		{
			// The "!2," variant some tools use where ':' is not allowed.
			name: "1700000000.M1P2Q3.host,S=5!2,RS",
			want: fileName{Base: "1700000000.M1P2Q3.host,S=5", Bits: bitAnswered | bitSeen, Size: 5},
			str:  "1700000000.M1P2Q3.host,S=5:2,RS",
		},
		{
			// Unknown letters are kept verbatim.
			name: "b:2,S3XZ",
			want: fileName{Base: "b", Bits: bitSeen, Size: -1, Other: "3XZ"},
			str:  "b:2,3SXZ",
		},
		{
			// The last ":2," starts the info.
			name: "odd:2,base:2,F",
			want: fileName{Base: "odd:2,base", Bits: bitFlagged, Size: -1},
			str:  "odd:2,base:2,F",
		},
		{
			// Experimental ":1," info is not flags: the whole name is the base.
			name: "b:1,foo",
			want: fileName{Base: "b:1,foo", Size: -1},
			str:  "b:1,foo:2,",
		},
		{
			name: "b,S=notanumber:2,",
			want: fileName{Base: "b,S=notanumber", Size: -1},
			str:  "b,S=notanumber:2,",
		},
		{
			name: "b,S=-5:2,",
			want: fileName{Base: "b,S=-5", Size: -1},
			str:  "b,S=-5:2,",
		},
		{
			// Dovecot's W= (virtual size) is not S=.
			name: "b,W=77:2,T",
			want: fileName{Base: "b,W=77", Bits: bitDeleted, Size: -1},
			str:  "b,W=77:2,T",
		},
		{
			name: "",
			want: fileName{Size: -1},
			str:  ":2,",
		},
	} {
		got := parseFileName(c.name)
		if got != c.want {
			t.Errorf("parseFileName(%q) = %+v, want %+v", c.name, got, c.want)
		}
		if s := got.String(); s != c.str {
			t.Errorf("parseFileName(%q).String() = %q, want %q", c.name, s, c.str)
		}
		if again := parseFileName(got.String()); again.Base != got.Base || again.Bits != got.Bits || again.Kw != got.Kw || again.Size != got.Size {
			t.Errorf("parse(String(parse(%q))) = %+v, want %+v", c.name, again, got)
		}
	}
}

func TestFileNameString(t *testing.T) {
	fn := fileName{Base: "base,S=10", Bits: bitSeen | bitDraft | bitAnswered, Kw: 1<<1 | 1<<3}
	if got, want := fn.String(), "base,S=10:2,DRSbd"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	// Every flag combination survives a round trip, letters in ASCII order.
	for bits := uint8(0); bits < 64; bits++ {
		fn := fileName{Base: "x", Bits: bits, Kw: uint32(bits) * 0x10101, Size: -1}
		s := fn.String()
		info := s[strings.LastIndex(s, ":2,")+3:]
		for i := 1; i < len(info); i++ {
			if info[i-1] >= info[i] {
				t.Errorf("String() = %q: info letters not in strict ASCII order", s)
			}
		}
		if got := parseFileName(s); got != fn {
			t.Errorf("parseFileName(%q) = %+v, want %+v", s, got, fn)
		}
	}
}

func TestNewBase(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	a, b := newBase(now, 42), newBase(now, 42)
	if a == b {
		t.Errorf("newBase returned %q twice", a)
	}
	for _, base := range []string{a, b} {
		if !strings.HasPrefix(base, "1700000000.M123456P") {
			t.Errorf("newBase = %q, want the time and microseconds first", base)
		}
		if strings.ContainsAny(base, "/:") {
			t.Errorf("newBase = %q contains '/' or ':'", base)
		}
		if fn := parseFileName(base); fn.Size != 42 || fn.Base != base {
			t.Errorf("parseFileName(%q) = %+v, want size 42", base, fn)
		}
	}
}
