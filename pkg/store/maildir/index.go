package maildir

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// The index is a cache of one mailbox's state, kept beside the Maildir in
// the file indexFile. It is an append-only log of records, each framed as
//
//	uint32 length | uint32 CRC-32C of the payload | payload
//
// and the payload is one type byte followed by its fields (uvarints and
// length-prefixed strings). The first record is a header with the format
// version and UIDVALIDITY. A snapshot (compaction) rewrites the log as the
// header, the keyword table, UIDNEXT and one add record per live message,
// to a temporary file that is synced and renamed over the old one.
//
// The log is never trusted over the Maildir: the directory is reconciled
// against it on load, and a log that is missing or damaged is rebuilt from
// the Maildir with a new UIDVALIDITY.
const (
	indexFile    = "imapctl.index"
	indexMagic   = "IMAPCTL-INDEX"
	indexVersion = 1

	maxRecordLen = 1 << 20
	maxStringLen = 64 << 10
)

const (
	recHeader  byte = 'H'
	recUIDNext byte = 'N'
	recKeyword byte = 'K'
	recAdd     byte = 'A'
	recFlags   byte = 'F'
	recExpunge byte = 'X'
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt reports an index that cannot be trusted; errTorn reports a
// final record that was cut short by a crash (its write was never
// acknowledged, so dropping it is safe).
var (
	errCorrupt = errors.New("index is corrupt")
	errTorn    = errors.New("index ends with a torn record")
)

// record is one decoded index record. Only the fields of its type are set.
type record struct {
	typ         byte
	version     uint64
	uidValidity uint32
	uidNext     uint32
	kwID        uint32
	kwName      string
	msg         rec
}

// rec is one message as kept in memory and in add records.
type rec struct {
	uid   uint32
	bits  uint8
	kw    []uint32 // keyword ids of the mailbox's keyword table, ascending
	size  int64
	date  int64 // internal date, Unix seconds
	tz    int32 // internal date's zone offset, seconds east of UTC
	base  string
	msgID string
}

type encoder struct{ b []byte }

func (e *encoder) byte(c byte)      { e.b = append(e.b, c) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

func encodeRecord(r *record) []byte {
	e := encoder{b: make([]byte, 8, 64)}
	e.byte(r.typ)
	switch r.typ {
	case recHeader:
		e.str(indexMagic)
		e.uvarint(r.version)
		e.uvarint(uint64(r.uidValidity))
	case recUIDNext:
		e.uvarint(uint64(r.uidNext))
	case recKeyword:
		e.uvarint(uint64(r.kwID))
		e.str(r.kwName)
	case recAdd:
		m := &r.msg
		e.uvarint(uint64(m.uid))
		e.byte(m.bits)
		e.uvarint(uint64(len(m.kw)))
		for _, k := range m.kw {
			e.uvarint(uint64(k))
		}
		e.varint(m.size)
		e.varint(m.date)
		e.varint(int64(m.tz))
		e.str(m.base)
		e.str(m.msgID)
	case recFlags:
		m := &r.msg
		e.uvarint(uint64(m.uid))
		e.byte(m.bits)
		e.uvarint(uint64(len(m.kw)))
		for _, k := range m.kw {
			e.uvarint(uint64(k))
		}
	case recExpunge:
		e.uvarint(uint64(r.msg.uid))
	}
	payload := e.b[8:]
	binary.LittleEndian.PutUint32(e.b[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(e.b[4:8], crc32.Checksum(payload, crcTable))
	return e.b
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(max uint64) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > max {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint(maxStringLen)
	if d.err || uint64(len(d.b)) < n {
		d.err = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) kwList() []uint32 {
	n := d.uvarint(uint64(len(d.b)))
	if d.err || n == 0 {
		return nil
	}
	kw := make([]uint32, 0, n)
	for i := uint64(0); i < n && !d.err; i++ {
		kw = append(kw, uint32(d.uvarint(1<<31)))
	}
	return kw
}

// decodePayload decodes one record payload (after framing and CRC).
func decodePayload(p []byte) (*record, error) {
	d := decoder{b: p}
	r := &record{typ: d.byte()}
	switch r.typ {
	case recHeader:
		if d.str() != indexMagic {
			return nil, fmt.Errorf("%w: bad magic", errCorrupt)
		}
		r.version = d.uvarint(1 << 32)
		r.uidValidity = uint32(d.uvarint(1<<32 - 1))
	case recUIDNext:
		r.uidNext = uint32(d.uvarint(1<<32 - 1))
	case recKeyword:
		r.kwID = uint32(d.uvarint(1 << 31))
		r.kwName = d.str()
	case recAdd:
		m := &r.msg
		m.uid = uint32(d.uvarint(1<<32 - 1))
		m.bits = d.byte()
		m.kw = d.kwList()
		m.size = d.varint()
		m.date = d.varint()
		m.tz = int32(d.varint())
		m.base = d.str()
		m.msgID = d.str()
		if m.uid == 0 || m.size < 0 || m.base == "" || m.tz < -24*3600 || m.tz > 24*3600 {
			d.err = true
		}
	case recFlags:
		r.msg.uid = uint32(d.uvarint(1<<32 - 1))
		r.msg.bits = d.byte()
		r.msg.kw = d.kwList()
	case recExpunge:
		r.msg.uid = uint32(d.uvarint(1<<32 - 1))
	default:
		return nil, fmt.Errorf("%w: unknown record type %q", errCorrupt, r.typ)
	}
	if d.err || len(d.b) != 0 {
		return nil, fmt.Errorf("%w: malformed %q record", errCorrupt, r.typ)
	}
	return r, nil
}

// readRecords reads framed records from r, calling fn for each. It returns
// the offset just past the last good record. A final record cut short is
// reported as errTorn; a complete record with a bad checksum or content as
// errCorrupt.
func readRecords(r io.Reader, fn func(*record) error) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	var hdr [8]byte
	buf := make([]byte, 0, 256)
	for {
		n, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			if n > 0 {
				return off, errTorn
			}
			return off, err
		}
		size := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if size == 0 || size > maxRecordLen {
			return off, fmt.Errorf("%w: bad record length %d at offset %d", errCorrupt, size, off)
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(br, buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return off, errTorn
			}
			return off, err
		}
		if crc32.Checksum(buf, crcTable) != sum {
			return off, fmt.Errorf("%w: checksum mismatch at offset %d", errCorrupt, off)
		}
		rec, err := decodePayload(buf)
		if err != nil {
			return off, fmt.Errorf("at offset %d: %w", off, err)
		}
		if err := fn(rec); err != nil {
			return off, err
		}
		off += 8 + int64(size)
	}
}

// indexLog appends records to an open index file.
type indexLog struct {
	f      *os.File
	size   int64
	noSync bool
	buf    []byte
}

// add buffers a record; commit writes and syncs the buffered records.
func (l *indexLog) add(r *record) { l.buf = append(l.buf, encodeRecord(r)...) }

func (l *indexLog) commit() error {
	if len(l.buf) == 0 {
		return nil
	}
	n, err := l.f.WriteAt(l.buf, l.size)
	if err != nil {
		// Cut back whatever part landed so the log stays well-formed.
		_ = l.f.Truncate(l.size)
		l.buf = l.buf[:0]
		return fmt.Errorf("write index: %w", err)
	}
	l.size += int64(n)
	l.buf = l.buf[:0]
	if !l.noSync {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("sync index: %w", err)
		}
	}
	return nil
}

func (l *indexLog) close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
