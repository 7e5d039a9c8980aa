package mutf7

import (
	"testing"
	"unicode/utf8"
)

var utf7Cases = []struct {
	dec, enc string
}{
	{"", ""},
	{"INBOX", "INBOX"},
	{"Sent Items", "Sent Items"},
	{"Réunions", "R&AOk-unions"},
	{"日本語", "&ZeVnLIqe-"},
	{"子", "&W1A-"},
	{"&", "&-"},
	{"Q&A", "Q&-A"},
	{"&&", "&-&-"},
	{"a&-b", "a&--b"},
	{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
	{"Entwürfe", "Entw&APw-rfe"},
	{"Ελληνικά", "&A5UDuwO7A7cDvQO5A7oDrA-"},
	{"📬", "&2D3c7A-"}, // outside the BMP: a surrogate pair
	{"é📬é", "&AOnYPdzsAOk-"},
	{"tab\there", "tab&AAk-here"}, // control characters are encoded
	{"\u00ff\u0100", "&AP8BAA-"},
	{"-", "-"},
	{"+,/", "+,/"},
}

func TestEncodeUTF7(t *testing.T) {
	for _, c := range utf7Cases {
		if got := Encode(c.dec); got != c.enc {
			t.Errorf("Encode(%q) = %q, want %q", c.dec, got, c.enc)
		}
	}
}

func TestDecodeUTF7(t *testing.T) {
	for _, c := range utf7Cases {
		got, err := Decode(c.enc)
		if err != nil || got != c.dec {
			t.Errorf("Decode(%q) = %q, %v; want %q", c.enc, got, err, c.dec)
		}
	}
}

func TestDecodeUTF7Invalid(t *testing.T) {
	for _, s := range []string{
		"&",           // unterminated
		"&ZeVnLIqe",   // unterminated
		"a&Jjo",       // unterminated
		"&AGE-",       // printable ASCII 'a' must not be encoded
		"&ACY-",       // '&' must be "&-"
		"&AOk",        // missing '-'
		"&AO-",        // odd number of bytes
		"&2D0-",       // lone high surrogate
		"&3Ew-",       // lone low surrogate
		"&3EzYPQ-",    // surrogates in the wrong order
		"&Z!V-",       // not base64
		"&Z/V-",       // '/' is ',' in modified base64
		"a\x00b",      // NUL
		"caf\xc3\xa9", // raw 8-bit
		"tab\there",   // raw control character
		"\x7f",
	} {
		if got, err := Decode(s); err == nil {
			t.Errorf("Decode(%q) = %q, want an error", s, got)
		}
	}
}

func FuzzDecodeUTF7(f *testing.F) {
	for _, c := range utf7Cases {
		f.Add(c.enc)
		f.Add(c.dec)
	}
	for _, s := range []string{"&", "&-", "&AGE-", "&2D0-", "&3EzYPQ-", "&AOl-", "\uFFFD", "a\u00a0b", "&//8-", "&,,8-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dec, err := Decode(s)
		if err == nil && !utf8.ValidString(dec) {
			t.Fatalf("Decode(%q) = %q: not UTF-8", s, dec)
		}
		if !utf8.ValidString(s) {
			return
		}
		enc := Encode(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Fatalf("Encode(%q) = %q: not printable ASCII", s, enc)
			}
		}
		back, err := Decode(enc)
		if err != nil || back != s {
			t.Fatalf("Decode(Encode(%q)) = %q, %v (encoded %q)", s, back, err, enc)
		}
	})
}

// TestUTF7RoundTripSpecials covers characters the decoder must not
// confuse with errors.
func TestUTF7RoundTripSpecials(t *testing.T) {
	for _, s := range []string{"\uFFFD", "a\uFFFDb", "\uFFFE", "\U0010FFFF", "\u0080", "\u00a0"} {
		enc := Encode(s)
		if got, err := Decode(enc); err != nil || got != s {
			t.Errorf("Decode(Encode(%q)) = %q, %v (encoded %q)", s, got, err, enc)
		}
	}
}

func TestEscape(t *testing.T) {
	for _, c := range []struct{ in, want string }{{"Q&A", "Q&-A"}, {"日本", "日本"}, {"&&", "&-&-"}, {"", ""}} {
		if got := Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
