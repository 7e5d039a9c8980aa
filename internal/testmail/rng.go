package testmail

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
)

// Stream salts keep the independent per-message random streams apart.
const (
	saltContent uint64 = 0x636f6e74656e7431 // body, headers, attachments
	saltID      uint64 = 0x6d73672d69642d31 // Message-ID
	saltFolder  uint64 = 0x666f6c6465722d31 // folder placement
	saltDup     uint64 = 0x6475702d69642d31 // shared Message-ID of a dup pair
	saltBig     uint64 = 0x6269672d61747431 // BigAttachment
	saltInner   uint64 = 0x696e6e65722d6d31 // nested message IDs
)

// rng is a small deterministic wrapper around a PCG source. Only the raw
// Uint64 output of PCG is used and every derived value (bounded integers,
// byte fills) is computed here, so the generated corpus does not depend on
// helper algorithms of math/rand/v2 that could change between releases.
type rng struct {
	src *rand.PCG
}

// splitmix64 is a bijective mixer used to turn small, correlated keys
// (seed, message index, salt) into well spread PCG seeds.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newStream returns the random stream identified by (seed, index, salt).
func newStream(seed int64, index uint64, salt uint64) *rng {
	s1 := splitmix64(uint64(seed) ^ salt)
	s2 := splitmix64(index*0xd1342543de82ef95 + salt)
	return &rng{src: rand.NewPCG(s1, s2)}
}

func (r *rng) u64() uint64 { return r.src.Uint64() }

// intn returns a value in [0, n). n must be > 0.
func (r *rng) intn(n int) int {
	if n <= 0 {
		panic("testmail: intn with n <= 0")
	}
	hi, _ := bits.Mul64(r.u64(), uint64(n))
	return int(hi)
}

// between returns a value in [lo, hi].
func (r *rng) between(lo, hi int) int {
	return lo + r.intn(hi-lo+1)
}

// percent reports true with probability p/100.
func (r *rng) percent(p int) bool { return r.intn(100) < p }

// hex returns n lowercase hexadecimal digits.
func (r *rng) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	var v uint64
	for i := range b {
		if i%16 == 0 {
			v = r.u64()
		}
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b)
}

// fill fills b with random bytes.
func (r *rng) fill(b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, r.u64())
		b = b[8:]
	}
	if len(b) > 0 {
		var tmp [8]byte
		binary.LittleEndian.PutUint64(tmp[:], r.u64())
		copy(b, tmp[:])
	}
}

func pick[T any](r *rng, s []T) T { return s[r.intn(len(s))] }
