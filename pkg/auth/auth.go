// Package auth keeps imapctl's users: names and password hashes (argon2id,
// or bcrypt for imported hashes) in one JSON file written atomically with
// mode 0600. Passwords themselves are never stored or logged.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// FileName is the users file inside a data directory.
const FileName = "users.json"

// Errors.
var (
	ErrNoUser      = errors.New("no such user")
	ErrUserExists  = errors.New("user already exists")
	ErrBadPassword = errors.New("wrong password")
	ErrEmptyPass   = errors.New("empty password")
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

// ValidateName checks a user name: 1–64 characters of letters, digits and
// . _ @ + -, not starting with a punctuation character. The name is used
// as a directory name, so nothing else is allowed.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("invalid user name %q: use 1-64 letters, digits and . _ @ + - (starting with a letter or digit)", name)
	}
	return nil
}

// User is one entry of the users file.
type User struct {
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
}

type file struct {
	Version int              `json:"version"`
	Users   map[string]*User `json:"users"`
}

// DB is the users file of a data directory. Its methods re-read the file
// when it changed on disk, so `imapctl user add` takes effect in a running
// server without a restart.
type DB struct {
	path string

	mu    sync.Mutex
	f     file
	mtime time.Time
	cache map[string][]byte // user -> HMAC of the last verified password
	key   []byte
}

// Open opens the users file of dataDir (which need not exist yet).
func Open(dataDir string) (*DB, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	db := &DB{path: filepath.Join(dataDir, FileName), key: key, cache: map[string][]byte{}}
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.reloadLocked(); err != nil {
		return nil, err
	}
	return db, nil
}

func (db *DB) reloadLocked() error {
	st, err := os.Stat(db.path)
	if errors.Is(err, fs.ErrNotExist) {
		db.f = file{Version: 1, Users: map[string]*User{}}
		db.mtime = time.Time{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	if st.ModTime().Equal(db.mtime) && db.f.Users != nil {
		return nil
	}
	data, err := os.ReadFile(db.path)
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("users file %s is not valid JSON: %w", db.path, err)
	}
	if f.Users == nil {
		f.Users = map[string]*User{}
	}
	db.f, db.mtime = f, st.ModTime()
	db.cache = map[string][]byte{}
	return nil
}

func (db *DB) saveLocked() error {
	data, err := json.MarshalIndent(&db.f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(db.path), 0o700); err != nil {
		return err
	}
	tmp := db.path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	if f, err := os.Open(tmp); err == nil {
		_ = f.Sync()
		_ = f.Close() // opened only to sync
	}
	if err := os.Rename(tmp, db.path); err != nil {
		_ = os.Remove(tmp) // best effort; the rename error is what matters
		return fmt.Errorf("write users file: %w", err)
	}
	if st, err := os.Stat(db.path); err == nil {
		db.mtime = st.ModTime()
	}
	return nil
}

// Names returns the user names, sorted.
func (db *DB) Names() ([]string, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.reloadLocked(); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(db.f.Users))
	for n := range db.f.Users {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Get returns a user's entry.
func (db *DB) Get(name string) (User, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.reloadLocked(); err != nil {
		return User{}, err
	}
	u, ok := db.f.Users[name]
	if !ok {
		return User{}, fmt.Errorf("%q: %w", name, ErrNoUser)
	}
	return *u, nil
}

// Add creates a user with a password.
func (db *DB) Add(name, password string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	hash, err := Hash(password)
	if err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.reloadLocked(); err != nil {
		return err
	}
	if _, ok := db.f.Users[name]; ok {
		return fmt.Errorf("%q: %w", name, ErrUserExists)
	}
	db.f.Users[name] = &User{Hash: hash, Created: time.Now().UTC().Truncate(time.Second)}
	return db.saveLocked()
}

// SetPassword replaces a user's password (creating the user when create
// is true).
func (db *DB) SetPassword(name, password string, create bool) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	hash, err := Hash(password)
	if err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.reloadLocked(); err != nil {
		return err
	}
	u, ok := db.f.Users[name]
	if !ok {
		if !create {
			return fmt.Errorf("%q: %w", name, ErrNoUser)
		}
		u = &User{Created: time.Now().UTC().Truncate(time.Second)}
		db.f.Users[name] = u
	}
	u.Hash = hash
	delete(db.cache, name)
	return db.saveLocked()
}

// Delete removes a user (not their mail).
func (db *DB) Delete(name string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.reloadLocked(); err != nil {
		return err
	}
	if _, ok := db.f.Users[name]; !ok {
		return fmt.Errorf("%q: %w", name, ErrNoUser)
	}
	delete(db.f.Users, name)
	delete(db.cache, name)
	return db.saveLocked()
}

// Verify checks a password. Successful checks are remembered (as an HMAC
// under a per-process random key, never the password) so that clients
// that log in often do not pay for argon2id every time.
func (db *DB) Verify(name, password string) error {
	db.mu.Lock()
	if err := db.reloadLocked(); err != nil {
		db.mu.Unlock()
		return err
	}
	u, ok := db.f.Users[name]
	var hash string
	if ok {
		hash = u.Hash
	}
	mac := hmac.New(sha256.New, db.key)
	mac.Write([]byte(name + "\x00" + hash + "\x00" + password))
	sum := mac.Sum(nil)
	cached := db.cache[name]
	db.mu.Unlock()
	if !ok {
		// Spend the same time as for a real user.
		hashSlots <- struct{}{}
		_ = CheckHash(dummyHash, password)
		<-hashSlots
		return ErrBadPassword
	}
	if cached != nil && subtle.ConstantTimeCompare(cached, sum) == 1 {
		return nil
	}
	// Each argon2id check takes 19 MiB: bound how many run at once so a
	// burst of logins cannot exhaust memory.
	hashSlots <- struct{}{}
	err := CheckHash(hash, password)
	<-hashSlots
	if err != nil {
		return err
	}
	db.mu.Lock()
	db.cache[name] = sum
	db.mu.Unlock()
	return nil
}

// argon2id parameters: RFC 9106's second recommended option scaled to a
// small host (19 MiB, 2 passes), as OWASP recommends.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// hashSlots bounds concurrent password checks to the number of CPUs.
var hashSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

var dummyHash = func() string { h, _ := Hash("not a password"); return h }()

// Hash returns a PHC-format argon2id hash of password.
func Hash(password string) (string, error) {
	if password == "" {
		return "", ErrEmptyPass
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckHash verifies password against an argon2id (PHC) or bcrypt hash.
func CheckHash(hash, password string) error {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
			return ErrBadPassword
		}
		return nil
	case strings.HasPrefix(hash, "$argon2id$"):
		parts := strings.Split(hash, "$")
		if len(parts) != 6 {
			return fmt.Errorf("malformed argon2id hash")
		}
		var version int
		var m, t uint32
		var p uint8
		if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
			return fmt.Errorf("unsupported argon2 version")
		}
		if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<22 || t == 0 || t > 64 || p == 0 {
			return fmt.Errorf("malformed argon2id parameters")
		}
		enc := base64.RawStdEncoding
		salt, err1 := enc.DecodeString(parts[4])
		want, err2 := enc.DecodeString(parts[5])
		if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 128 {
			return fmt.Errorf("malformed argon2id hash")
		}
		got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return ErrBadPassword
		}
		return nil
	default:
		return fmt.Errorf("unknown password hash scheme")
	}
}

// RandomPassword returns a random password of 20 URL-safe characters.
func RandomPassword() string {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
