package mimeparse

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// BinarySection returns a reader for FETCH BINARY[part]<partial> (RFC 3516)
// of the message rooted at p, and the exact number of bytes it yields: the
// part body with its Content-Transfer-Encoding (base64, quoted-printable)
// decoded. The empty path is the whole message: its header followed by its
// decoded body. Decoding is streamed; for an encoded body the size is found
// by a counting pass through the decoder.
//
// Unlike go-imap, no charset conversion is applied (RFC 3516 only removes
// the transfer encoding), and malformed encoded data is decoded leniently
// instead of failing. A part path that does not exist yields an empty
// section. An unknown encoding yields an error wrapping ErrUnknownEncoding.
func (p *Part) BinarySection(r io.ReaderAt, item *imap.FetchItemBinarySection) (io.Reader, int64, error) {
	e := p.Find(item.Part)
	if e == nil {
		return bytes.NewReader(nil), 0, nil
	}
	enc, err := e.transferEncoding()
	if err != nil {
		return nil, 0, err
	}
	var hdr int64
	if len(item.Part) == 0 {
		hdr = e.BodyStart - e.Start
	}
	if enc == "" {
		start, end := partialRange(e.BodyStart-hdr, e.End, item.Partial)
		return io.NewSectionReader(r, start, end-start), end - start, nil
	}
	bodySize, err := e.decodedSize(r, enc)
	if err != nil {
		return nil, 0, err
	}
	total := hdr + bodySize
	start, end := partialRange(0, total, item.Partial)
	n := end - start
	if n == 0 {
		return bytes.NewReader(nil), 0, nil
	}
	rd := e.decoder(r, enc)
	if hdr > 0 {
		rd = io.MultiReader(io.NewSectionReader(r, e.Start, hdr), rd)
	}
	if start > 0 {
		if _, err := io.CopyN(io.Discard, rd, start); err != nil {
			return nil, 0, fmt.Errorf("mimeparse: decode part at offset %d: %w", e.BodyStart, err)
		}
	}
	return &exactReader{r: io.LimitReader(rd, n), n: n}, n, nil
}

// BinarySectionSize returns the size of FETCH BINARY.SIZE[part] (RFC 3516):
// the size of BINARY[part] without partial.
func (p *Part) BinarySectionSize(r io.ReaderAt, part []int) (uint32, error) {
	_, n, err := p.BinarySection(r, &imap.FetchItemBinarySection{Part: part})
	return clampUint32(n), err
}

// transferEncoding returns the normalised Content-Transfer-Encoding that
// needs decoding ("base64" or "quoted-printable"), or "" for an identity
// encoding. Multipart entities are never decoded (RFC 2045 §6.4).
func (p *Part) transferEncoding() (string, error) {
	if len(p.Children) > 0 || p.typ == "multipart" {
		return "", nil
	}
	v := strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")))
	switch v {
	case "base64", "quoted-printable":
		return v, nil
	case "", "7bit", "8bit", "binary":
		return "", nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownEncoding, v)
}

func (p *Part) decoder(r io.ReaderAt, enc string) io.Reader {
	src := bufio.NewReaderSize(io.NewSectionReader(r, p.BodyStart, p.End-p.BodyStart), 32<<10)
	if enc == "base64" {
		return &base64Reader{src: src}
	}
	return &qpReader{src: src}
}

func (p *Part) decodedSize(r io.ReaderAt, enc string) (int64, error) {
	n, err := io.Copy(io.Discard, p.decoder(r, enc))
	if err != nil {
		return 0, fmt.Errorf("mimeparse: decode part at offset %d: %w", p.BodyStart, err)
	}
	return n, nil
}

// exactReader reports io.ErrUnexpectedEOF if the underlying data ends before
// the announced size (the message changed since it was parsed).
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// base64Reader decodes base64 (RFC 2045 §6.8) leniently: characters outside
// the alphabet are skipped, and a pad character ends the current quantum, so
// concatenated encodings decode too. Well-formed input decodes exactly as
// encoding/base64's StdEncoding does.
type base64Reader struct {
	src  *bufio.Reader
	acc  uint32
	n    int
	out  [3]byte
	outN int
	outI int
	eof  bool
}

var base64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

func (d *base64Reader) flush() {
	d.outN = 0
	switch d.n {
	case 2:
		d.out[0] = byte(d.acc >> 4)
		d.outN = 1
	case 3:
		d.out[0] = byte(d.acc >> 10)
		d.out[1] = byte(d.acc >> 2)
		d.outN = 2
	}
	d.outI = 0
	d.acc, d.n = 0, 0
}

func (d *base64Reader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		if d.outI < d.outN {
			c := copy(b[n:], d.out[d.outI:d.outN])
			d.outI += c
			n += c
			continue
		}
		if d.eof {
			break
		}
		// Fast path: decode whole buffered quanta straight into b, skipping
		// line breaks between them.
		if d.n == 0 {
			buf, _ := d.src.Peek(d.src.Buffered())
			i := 0
			for n+3 <= len(b) && i < len(buf) {
				if c := buf[i]; c == '\r' || c == '\n' {
					i++
					continue
				}
				if i+4 > len(buf) {
					break
				}
				v0, v1, v2, v3 := base64Values[buf[i]], base64Values[buf[i+1]], base64Values[buf[i+2]], base64Values[buf[i+3]]
				if (v0|v1|v2|v3)&0xc0 != 0 {
					break
				}
				v := uint32(v0)<<18 | uint32(v1)<<12 | uint32(v2)<<6 | uint32(v3)
				b[n], b[n+1], b[n+2] = byte(v>>16), byte(v>>8), byte(v)
				n += 3
				i += 4
			}
			_, _ = d.src.Discard(i) // buffered bytes: cannot fail
			if n == len(b) {
				break
			}
		}
		c, err := d.src.ReadByte()
		if err != nil {
			if err != io.EOF {
				return n, err
			}
			d.eof = true
			d.flush()
			continue
		}
		if v := base64Values[c]; v != 0xff {
			d.acc = d.acc<<6 | uint32(v)
			d.n++
			if d.n == 4 {
				d.out[0], d.out[1], d.out[2] = byte(d.acc>>16), byte(d.acc>>8), byte(d.acc)
				d.outN, d.outI = 3, 0
				d.acc, d.n = 0, 0
			}
		} else if c == '=' {
			d.flush()
		}
	}
	if n == 0 && d.eof && d.outI >= d.outN {
		return 0, io.EOF
	}
	return n, nil
}

// qpReader decodes quoted-printable (RFC 2045 §6.7) leniently. Well-formed
// input decodes exactly as mime/quotedprintable does: trailing blanks of a
// line are dropped, "=" before a line break (after optional blanks) is a soft
// line break, hard line breaks keep their CRLF or LF, "=XX" with hex digits
// (either case) is a byte, and any other "=" is literal. Malformed input
// never fails: stray control bytes pass through, and an "=" followed only
// by blanks up to the end of the line or of the data is a soft line break.
type qpReader struct {
	src *bufio.Reader
	// Blanks (space, tab, CR) seen but not yet written: dropped if they end
	// the line.
	ws []byte
	// An "=" that may start a soft line break is pending (ws follows it).
	eq  bool
	out []byte
	eof bool
}

// maxPendingBlanks bounds the buffered blanks; longer runs are written out.
// (mime/quotedprintable rejects lines that long anyway.)
const maxPendingBlanks = 4096

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// flushPending writes a pending "=" (literal) and pending blanks.
func (d *qpReader) flushPending() {
	if d.eq {
		d.out = append(d.out, '=')
		d.eq = false
	}
	d.out = append(d.out, d.ws...)
	d.ws = d.ws[:0]
}

func (d *qpReader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		if len(d.out) > 0 {
			c := copy(b[n:], d.out)
			d.out = d.out[:copy(d.out, d.out[c:])]
			n += c
			continue
		}
		if d.eof {
			break
		}
		// Fast path: plain bytes with nothing pending.
		if !d.eq && len(d.ws) == 0 {
			buf, _ := d.src.Peek(d.src.Buffered())
			i := 0
			for i < len(buf) && n < len(b) {
				c := buf[i]
				if c == '=' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
					break
				}
				b[n] = c
				n++
				i++
			}
			_, _ = d.src.Discard(i) // buffered bytes: cannot fail
			if n == len(b) {
				break
			}
		}
		c, err := d.src.ReadByte()
		if err != nil {
			if err != io.EOF {
				return n, err
			}
			// End of data: trailing blanks are dropped, a pending "=" is a
			// soft line break.
			d.eof = true
			d.eq = false
			d.ws = d.ws[:0]
			continue
		}
		switch c {
		case ' ', '\t', '\r':
			d.ws = append(d.ws, c)
			if len(d.ws) > maxPendingBlanks {
				d.flushPending()
			}
		case '\n':
			if d.eq {
				d.eq = false // soft line break
			} else if len(d.ws) > 0 && d.ws[len(d.ws)-1] == '\r' {
				d.out = append(d.out, '\r', '\n')
			} else {
				d.out = append(d.out, '\n')
			}
			d.ws = d.ws[:0]
		case '=':
			d.flushPending()
			if q, _ := d.src.Peek(2); len(q) == 2 {
				hi, ok1 := unhex(q[0])
				lo, ok2 := unhex(q[1])
				if ok1 && ok2 {
					_, _ = d.src.Discard(2) // peeked: cannot fail
					d.out = append(d.out, hi<<4|lo)
					continue
				}
			}
			d.eq = true
		default:
			d.flushPending()
			d.out = append(d.out, c)
		}
	}
	if n == 0 && d.eof && len(d.out) == 0 {
		return 0, io.EOF
	}
	return n, nil
}
