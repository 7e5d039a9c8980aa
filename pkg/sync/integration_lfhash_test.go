package sync

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// TestLFHasherChunks checks the CRLF-as-LF hash behind the matching of
// twins whose line endings a server converted (see
// TestIntegrationDovecotCourier), whatever the chunks it is written in:
// a CR at the end of one write and its LF at the start of the next.
func TestLFHasherChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab\r\n")
	for i := 0; i < 500; i++ {
		data := make([]byte, rng.IntN(40))
		for j := range data {
			data[j] = alphabet[rng.IntN(len(alphabet))]
		}
		want := sha256.Sum256(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")))
		h := &lfHasher{h: sha256.New()}
		for rest := data; len(rest) > 0; {
			n := rng.IntN(len(rest) + 1)
			if _, err := h.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if got := h.sum(); !bytes.Equal(got, want[:]) {
			t.Fatalf("%q: hash differs from that of the same bytes with CRLF made LF", data)
		}
	}
}
