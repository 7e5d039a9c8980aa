package maildir

import (
	"strings"
	"unicode/utf8"

	"github.com/imapctl/imapctl/internal/mutf7"
	"github.com/imapctl/imapctl/pkg/store"
)

// Delim is the hierarchy separator imapctl shows to IMAP clients. On disk,
// Maildir++ joins levels with '.', as Dovecot does with its default layout.
const Delim = '/'

// maxNameLen bounds a mailbox name in bytes (UTF-8) and each encoded path
// component (most filesystems allow 255 bytes per component).
const (
	maxNameLen      = 1000
	maxComponentLen = 200
	maxDepth        = 32
	// maxDirLen bounds the whole Maildir++ directory name: every level of
	// the hierarchy lives in that one name (".A.B.C"), so it must fit in
	// a single path component (NAME_MAX, 255 bytes on common filesystems).
	maxDirLen = 255
)

// ValidateName checks a UTF-8 mailbox name as given by a client and returns
// its canonical form ("inbox" in any case becomes "INBOX"). It rejects names
// that could escape the Maildir or that Maildir++ cannot represent.
func ValidateName(name string) (string, error) {
	bad := func(reason string) (string, error) {
		return "", &store.NameError{Name: name, Reason: reason}
	}
	if name == "" {
		return bad("empty name")
	}
	if len(name) > maxNameLen {
		return bad("name too long")
	}
	if !utf8.ValidString(name) {
		return bad("not valid UTF-8")
	}
	for _, r := range name {
		switch {
		case r == 0:
			return bad("contains NUL")
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return bad("contains a control character")
		case r == '\\':
			return bad(`contains a backslash`)
		case r == '.':
			return bad(`contains '.', which the Maildir++ layout uses as its level separator`)
		case r == '*' || r == '%':
			return bad("contains a LIST wildcard ('*' or '%')")
		}
	}
	if strings.HasPrefix(name, string(Delim)) {
		return bad("absolute names are not allowed")
	}
	parts := strings.Split(name, string(Delim))
	if len(parts) > maxDepth {
		return bad("hierarchy too deep")
	}
	for i, p := range parts {
		if p == "" {
			return bad("empty hierarchy level")
		}
		if len(mutf7.Encode(p)) > maxComponentLen {
			return bad("a hierarchy level is too long")
		}
		if i == 0 && strings.EqualFold(p, "INBOX") {
			parts[0] = "INBOX"
		}
	}
	canon := strings.Join(parts, string(Delim))
	if len(dirName(canon)) > maxDirLen {
		return bad("name too long for a Maildir++ directory")
	}
	return canon, nil
}

// dirName returns the Maildir++ directory (relative to the user's root) for
// a validated mailbox name: "" for INBOX, ".Sent" for Sent,
// ".&ZeVnLIqe-.&W1A-" for "日本語/子".
func dirName(name string) string {
	if name == "INBOX" {
		return ""
	}
	parts := strings.Split(name, string(Delim))
	for i, p := range parts {
		parts[i] = mutf7.Encode(p)
	}
	return "." + strings.Join(parts, ".")
}

// nameFromDir is the inverse of dirName for a directory entry of the user's
// root. It reports false for entries that are not mailbox directories or
// whose names cannot be decoded.
func nameFromDir(dir string) (string, bool) {
	if !strings.HasPrefix(dir, ".") || dir == "." || dir == ".." {
		return "", false
	}
	parts := strings.Split(dir[1:], ".")
	for i, p := range parts {
		if p == "" {
			return "", false
		}
		s, err := mutf7.Decode(p)
		if err != nil {
			return "", false
		}
		parts[i] = s
	}
	name, err := ValidateName(strings.Join(parts, string(Delim)))
	// Only the canonical spelling maps back to this directory: ".INBOX",
	// ".inbox.x" or a non-canonical UTF-7 form would be listed under a name
	// that opens another directory.
	if err != nil || dirName(name) != dir {
		return "", false
	}
	return name, true
}
