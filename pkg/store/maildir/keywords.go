package maildir

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// dovecotKeywords is the per-folder "dovecot-keywords" file: lines of
// "<index> <keyword>", where index 0..25 is the file-name letter 'a'..'z'.
// Keywords beyond the 26 letters are kept in imapctl's index only.
const keywordsFile = "dovecot-keywords"

type letterTable struct {
	names [26]string
	mtime time.Time
}

// parseKeywords parses a dovecot-keywords file. Malformed lines are
// skipped: the file is written by other programs too.
func parseKeywords(data []byte) [26]string {
	var names [26]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		idx, name, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || i >= 26 || !validKeyword(name) {
			continue
		}
		names[i] = name
	}
	return names
}

// validKeyword reports whether name is an IMAP atom usable as a keyword
// (RFC 9051 §9 flag-keyword: atom, no backslash).
func validKeyword(name string) bool {
	if name == "" || len(name) > 250 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= 0x20 || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '{', '%', '*', '"', '\\', ']':
			return false
		}
	}
	return true
}

func (t *letterTable) load(dir string) error {
	path := filepath.Join(dir, keywordsFile)
	st, err := os.Stat(path)
	if os.IsNotExist(err) {
		t.names = [26]string{}
		t.mtime = time.Time{}
		return nil
	}
	if err != nil {
		return err
	}
	if st.ModTime().Equal(t.mtime) {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	t.names = parseKeywords(data)
	t.mtime = st.ModTime()
	return nil
}

// letter returns the letter index of a keyword, assigning a free one (and
// rewriting the file) when assign is true. It returns -1 when the keyword
// has no letter.
func (t *letterTable) letter(dir, name string, assign, noSync bool) (int, error) {
	for i, n := range t.names {
		if n != "" && strings.EqualFold(n, name) {
			return i, nil
		}
	}
	if !assign {
		return -1, nil
	}
	for i, n := range t.names {
		if n == "" {
			t.names[i] = name
			if err := t.save(dir, noSync); err != nil {
				t.names[i] = ""
				return -1, err
			}
			return i, nil
		}
	}
	return -1, nil
}

func (t *letterTable) save(dir string, noSync bool) error {
	var b bytes.Buffer
	for i, n := range t.names {
		if n != "" {
			fmt.Fprintf(&b, "%d %s\n", i, n)
		}
	}
	path := filepath.Join(dir, keywordsFile)
	if err := writeFileAtomic(path, b.Bytes(), noSync); err != nil {
		return err
	}
	if st, err := os.Stat(path); err == nil {
		t.mtime = st.ModTime()
	}
	return nil
}

// writeFileAtomic writes data to path through a synced temporary file and
// a rename, so readers see the old or the new content, never a mix.
func writeFileAtomic(path string, data []byte, noSync bool) error {
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && !noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp) // best effort; err is what matters
		return err
	}
	if !noSync {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
