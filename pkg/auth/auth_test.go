package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"bob.smith@example.com", true},
		{"a+b_c-d", true},
		{"0day", true},
		{"", false},
		{".hidden", false},
		{"../x", false},
		{"a/b", false},
		{"a..b", false},
		{"-rf", false},
		{"name with space", false},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"émile", false},
	} {
		if err := ValidateName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestHashAndCheck(t *testing.T) {
	h, err := Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not argon2id PHC", h)
	}
	if strings.Contains(h, "correct horse") {
		t.Fatal("hash contains the password")
	}
	if err := CheckHash(h, "correct horse"); err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if err := CheckHash(h, "wrong"); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("wrong password: got %v", err)
	}
	h2, _ := Hash("correct horse")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	if _, err := Hash(""); !errors.Is(err, ErrEmptyPass) {
		t.Fatalf("empty password: %v", err)
	}
}

func TestCheckHashBcryptAndMalformed(t *testing.T) {
	b, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckHash(string(b), "pw"); err != nil {
		t.Fatalf("bcrypt: %v", err)
	}
	if err := CheckHash(string(b), "nope"); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("bcrypt wrong: %v", err)
	}
	for _, bad := range []string{"", "plain", "$argon2id$", "$argon2id$v=19$m=1,t=1,p=1$!!$!!",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdA$aGFzaA"} {
		if err := CheckHash(bad, "pw"); err == nil {
			t.Errorf("CheckHash(%q) accepted", bad)
		}
	}
}

func TestDB(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Add("alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := db.Add("alice", "x"); !errors.Is(err, ErrUserExists) {
		t.Fatalf("duplicate add: %v", err)
	}
	if err := db.Verify("alice", "s3cret"); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// The cached path must still reject a wrong password.
	if err := db.Verify("alice", "S3cret"); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("wrong password after cache: %v", err)
	}
	if err := db.Verify("nobody", "s3cret"); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := db.SetPassword("alice", "new", false); err != nil {
		t.Fatal(err)
	}
	if err := db.Verify("alice", "s3cret"); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("old password still accepted: %v", err)
	}
	if err := db.SetPassword("ghost", "x", false); !errors.Is(err, ErrNoUser) {
		t.Fatalf("passwd of missing user: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "s3cret") || strings.Contains(string(data), `"new"`) {
		t.Fatal("users file contains a password")
	}
	st, _ := os.Stat(filepath.Join(dir, FileName))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode %v, want 0600", st.Mode().Perm())
	}

	// A second DB (e.g. `imapctl user add` while serve runs) sees changes.
	other, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // distinct mtime on coarse filesystems
	if err := other.Add("bob", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := db.Verify("bob", "pw"); err != nil {
		t.Fatalf("running DB did not pick up the new user: %v", err)
	}
	if err := other.Delete("bob"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := db.Verify("bob", "pw"); err == nil {
		t.Fatal("deleted user still verifies")
	}
	names, _ := db.Names()
	if len(names) != 1 || names[0] != "alice" {
		t.Fatalf("names = %v", names)
	}
}

func TestCorruptUsersFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("corrupt file: %v", err)
	}
}

func FuzzCheckHash(f *testing.F) {
	h, _ := Hash("pw")
	f.Add(h, "pw")
	f.Add("$2b$04$abcdefghijklmnopqrstuu", "x")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAA$AAAA", "")
	f.Fuzz(func(t *testing.T, hash, pw string) {
		if strings.HasPrefix(hash, "$argon2id$") {
			// Bound the work the fuzzer can ask for.
			if strings.Contains(hash, "m=") && !strings.Contains(hash, "m=8,") {
				return
			}
		}
		_ = CheckHash(hash, pw)
	})
}
