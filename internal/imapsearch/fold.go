package imapsearch

import (
	"bytes"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Case-insensitive comparison uses Unicode simple case folding, the same
// equivalence as strings.EqualFold: two runes are equal when they belong to
// the same unicode.SimpleFold orbit. Every rune is mapped to the smallest rune
// of its orbit, so that folded strings can be compared byte by byte. The
// smallest member never has a longer UTF-8 encoding than the rune itself, so
// folding valid UTF-8 never grows it; an invalid byte becomes U+FFFD.

// asciiFold maps ASCII bytes to their folded form (for letters, the upper
// case letter, which is the smallest member of their orbit).
var asciiFold = func() (t [utf8.RuneSelf]byte) {
	for i := range t {
		c := byte(i)
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		t[i] = c
	}
	return t
}()

// foldRune returns the canonical representative of r's case-folding orbit.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if r < 0 {
			return utf8.RuneError
		}
		return rune(asciiFold[r])
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}

// appendFold appends the folded form of src to dst. Unless final is set, an
// incomplete UTF-8 sequence at the end of src is left unconsumed; consumed
// reports how many bytes of src were folded.
func appendFold(dst, src []byte, final bool) (out []byte, consumed int) {
	i := 0
	for i < len(src) {
		c := src[i]
		if c < utf8.RuneSelf {
			dst = append(dst, asciiFold[c])
			i++
			continue
		}
		if !final && !utf8.FullRune(src[i:]) {
			break
		}
		r, size := utf8.DecodeRune(src[i:])
		dst = utf8.AppendRune(dst, foldRune(r))
		i += size
	}
	return dst, i
}

// appendFoldString appends the folded form of s to dst.
func appendFoldString(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, asciiFold[c])
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		dst = utf8.AppendRune(dst, foldRune(r))
		i += size
	}
	return dst
}

func foldString(s string) []byte {
	return appendFoldString(make([]byte, 0, len(s)), s)
}

// shortHaystack is the length up to which containsFolded compares rune by
// rune; longer strings are folded into a pooled buffer and searched with
// bytes.Contains, which is linear where the rune-wise loop is quadratic.
const shortHaystack = 256

var foldPool = sync.Pool{New: func() any { return new([]byte) }}

// containsFolded reports whether sub, whose folded form is folded, is within
// s under simple case folding.
func containsFolded(s, sub string, folded []byte) bool {
	if len(folded) == 0 {
		return true
	}
	if len(s) <= shortHaystack {
		return containsFold(s, sub)
	}
	bp := foldPool.Get().(*[]byte)
	buf := appendFoldString((*bp)[:0], s)
	found := bytes.Contains(buf, folded)
	*bp = buf
	foldPool.Put(bp)
	return found
}

// containsFold reports whether substr is within s under simple case folding,
// without allocating.
func containsFold(s, substr string) bool {
	if substr == "" {
		return true
	}
	for i := 0; i < len(s); {
		if hasPrefixFold(s[i:], substr) {
			return true
		}
		if s[i] < utf8.RuneSelf {
			i++
		} else {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
		}
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	for prefix != "" {
		if s == "" {
			return false
		}
		var r1, r2 rune
		var n1, n2 int
		if s[0] < utf8.RuneSelf {
			r1, n1 = rune(s[0]), 1
		} else {
			r1, n1 = utf8.DecodeRuneInString(s)
		}
		if prefix[0] < utf8.RuneSelf {
			r2, n2 = rune(prefix[0]), 1
		} else {
			r2, n2 = utf8.DecodeRuneInString(prefix)
		}
		if r1 != r2 && foldRune(r1) != foldRune(r2) {
			return false
		}
		s, prefix = s[n1:], prefix[n2:]
	}
	return true
}

// window is a streaming multi-needle substring matcher over folded text. It
// holds at most flushAt bytes of folded text plus one read's worth, and keeps
// maxLen-1 bytes of overlap between searches so that a needle spanning two
// reads is still found. A segment (a part body, a header field) is searched
// on its own: matches never span segments.
type window struct {
	needles []needleSpec
	found   []bool
	left    int // needles not found yet
	maxLen  int

	buf     []byte // folded text of the current segment not yet discarded
	flushAt int
	header  bool // current segment is the top-level header: TEXT needles only
}

const (
	readSize   = 8 << 10
	searchSize = 32 << 10
)

func newWindow(needles []needleSpec, maxLen int) *window {
	w := &window{
		needles: needles,
		found:   make([]bool, len(needles)),
		left:    len(needles),
		maxLen:  maxLen,
		flushAt: searchSize + maxLen,
	}
	// Folding can triple the size of invalid input (one byte to U+FFFD).
	w.buf = make([]byte, 0, w.flushAt+3*readSize+utf8.UTFMax)
	return w
}

func (w *window) done() bool { return w.left == 0 }

// begin starts a new segment.
func (w *window) begin(topHeader bool) {
	w.buf = w.buf[:0]
	w.header = topHeader
}

// maybeFlush searches the segment when the buffer is full, keeping the tail
// a needle could still span. It reports whether every needle has been found.
func (w *window) maybeFlush() bool {
	if len(w.buf) < w.flushAt {
		return false
	}
	if w.search() {
		return true
	}
	keep := max(w.maxLen-1, 0)
	n := copy(w.buf, w.buf[len(w.buf)-keep:])
	w.buf = w.buf[:n]
	return false
}

// end searches the rest of the segment and reports whether every needle has
// been found.
func (w *window) end() bool {
	done := w.search()
	w.buf = w.buf[:0]
	return done
}

func (w *window) search() bool {
	for i := range w.needles {
		if w.found[i] || (w.header && !w.needles[i].text) {
			continue
		}
		if bytes.Contains(w.buf, w.needles[i].folded) {
			w.found[i] = true
			w.left--
		}
	}
	return w.left == 0
}
