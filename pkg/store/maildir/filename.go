package maildir

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// System flag bits as kept in the index.
const (
	bitSeen uint8 = 1 << iota
	bitAnswered
	bitFlagged
	bitDeleted
	bitDraft
	bitPassed // Maildir 'P' (passed/forwarded): kept on disk, not an IMAP flag
)

// flagLetters maps the Maildir info letters (https://cr.yp.to/proto/maildir.html)
// to index bits, in ASCII order as Maildir requires.
var flagLetters = []struct {
	letter byte
	bit    uint8
}{
	{'D', bitDraft},
	{'F', bitFlagged},
	{'P', bitPassed},
	{'R', bitAnswered},
	{'S', bitSeen},
	{'T', bitDeleted},
}

// fileName is a parsed Maildir file name: base ":2," info.
type fileName struct {
	Base  string // unique part, before ":2,"
	Bits  uint8  // system flag bits from the info letters
	Kw    uint32 // keyword letters 'a'..'z' as bits 0..25
	Size  int64  // from ",S=<n>" in the base, -1 when absent
	Other string // info letters we do not interpret, kept verbatim
}

// parseFileName parses a Maildir file name. It accepts names without info
// (as delivered to new/) and the "!2," variant some tools write. It never
// fails: unknown info characters are kept in Other.
func parseFileName(name string) fileName {
	fn := fileName{Base: name, Size: -1}
	sep := strings.LastIndex(name, ":2,")
	if sep < 0 {
		sep = strings.LastIndex(name, "!2,")
	}
	if sep >= 0 {
		fn.Base = name[:sep]
		info := name[sep+3:]
		var other []byte
	next:
		for i := 0; i < len(info); i++ {
			c := info[i]
			if c >= 'a' && c <= 'z' {
				fn.Kw |= 1 << (c - 'a')
				continue
			}
			for _, fl := range flagLetters {
				if fl.letter == c {
					fn.Bits |= fl.bit
					continue next
				}
			}
			other = append(other, c)
		}
		fn.Other = string(other)
	}
	// ",S=<size>" is the Dovecot extension giving the file's size.
	for _, field := range strings.Split(fn.Base, ",")[1:] {
		if v, ok := strings.CutPrefix(field, "S="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				fn.Size = n
			}
		}
	}
	return fn
}

// String formats the name for cur/: base ":2," followed by the info
// letters in ASCII order.
func (fn fileName) String() string {
	var letters []byte
	for _, fl := range flagLetters {
		if fn.Bits&fl.bit != 0 {
			letters = append(letters, fl.letter)
		}
	}
	for i := 0; i < 26; i++ {
		if fn.Kw&(1<<i) != 0 {
			letters = append(letters, byte('a'+i))
		}
	}
	letters = append(letters, fn.Other...)
	sort.Slice(letters, func(i, j int) bool { return letters[i] < letters[j] })
	return fn.Base + ":2," + string(letters)
}

var deliveryCounter atomic.Uint64

// hostname is the delivering host's name as Maildir writes it: '/', ':'
// and ',' are replaced by their octal escapes.
var hostname = sync.OnceValue(func() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "localhost"
	}
	return strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`).Replace(name)
})

// newBase returns a unique Maildir base name with the message size
// (time.M<usec>P<pid>Q<counter>.host,S=size).
func newBase(now time.Time, size int64) string {
	return fmt.Sprintf("%d.M%dP%dQ%d.%s,S=%d", now.Unix(), now.Nanosecond()/1000, os.Getpid(),
		deliveryCounter.Add(1), hostname(), size)
}
