// Package mutf7 implements modified UTF-7 (RFC 3501 §5.1.3), the encoding
// of IMAP4rev1 mailbox names, which Maildir++ also uses for folder names on
// disk.
package mutf7

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 §5.1.3): printable ASCII stands for itself, '&'
// is "&-", and other characters are UTF-16 in modified base64 between '&'
// and '-', with ',' instead of '/'.
var b64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// Encode returns s in modified UTF-7.
func Encode(s string) string {
	var b strings.Builder
	var run []uint16
	flush := func() {
		if len(run) == 0 {
			return
		}
		buf := make([]byte, 2*len(run))
		for i, u := range run {
			buf[2*i] = byte(u >> 8)
			buf[2*i+1] = byte(u)
		}
		b.WriteByte('&')
		b.WriteString(b64.EncodeToString(buf))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = utf16.AppendRune(run, r)
	}
	flush()
	return b.String()
}

// ErrInvalid is returned by Decode.
var ErrInvalid = errors.New("invalid modified UTF-7")

// Decode decodes modified UTF-7. It fails on anything RFC 3501 does not allow:
// raw 8-bit or control characters, encoded printable ASCII, unterminated
// runs, bad base64 and unpaired surrogates.
func Decode(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", ErrInvalid
		}
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", ErrInvalid
		}
		enc := s[i+1 : i+1+end]
		i += end + 2
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := b64.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", ErrInvalid
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for j := 0; j < len(u); j++ {
			r := rune(u[j])
			switch {
			case utf16.IsSurrogate(r):
				// Only a high surrogate followed by a low one is valid.
				// (U+FFFD itself is a valid character: check the pair,
				// not the decoded value.)
				if j+1 == len(u) {
					return "", ErrInvalid
				}
				r = utf16.DecodeRune(r, rune(u[j+1]))
				if r == utf8.RuneError {
					return "", ErrInvalid
				}
				j++
			case r >= 0x20 && r <= 0x7e:
				// Printable ASCII must not be encoded (RFC 3501 §5.1.3).
				return "", ErrInvalid
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// Escape returns s with '&' written as "&-", the form a server that
// accepts UTF-8 names (IMAP4rev2, UTF8=ACCEPT) still expects for it in a
// name sent as UTF-8, as go-imap's client sends it.
func Escape(s string) string {
	return strings.ReplaceAll(s, "&", "&-")
}
