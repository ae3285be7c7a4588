package cluster

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// ErrWALDamaged is wrapped by the error for a raft-wal segment file that
// fails checkWALSegments.
var ErrWALDamaged = errors.New("raft-wal segment file damaged")

// The segment file format of raft-wal v0.4.x (segment/format.go), which
// checkSegment reads on its own: raft-wal checks a commit's CRC only for
// the last commit of the tail segment when it opens the log, and reads
// entries without any check.
const (
	segHeaderLen   = 32
	segMagic       = 0x58eb6b0d
	segVersion     = 0
	frameHeaderLen = 8
	frameEntry     = 1
	frameIndex     = 2
	frameCommit    = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkWALSegments reads every segment file the meta file lists before
// raft-wal opens them, and returns an error naming the first damaged one.
// A commit (a batch of entries, fsync'ed before raft-wal returns) carries
// a CRC32 of the bytes since the previous commit; every commit of a
// sealed segment must check, and a sealed segment must hold the entries
// the meta file says. In the tail segment, raft-wal drops what follows its
// last complete commit, which is what a crash mid-append leaves (a torn
// tail); checkWALSegments accepts exactly that: a damaged commit that is
// not the last one, or a tail file cut short of the size raft-wal gave it
// when it created it, is damage, as raft-wal would silently drop
// committed entries. A missing segment file is damage too, the tail's
// included: raft-wal recreates a missing tail as empty (for a crash of
// the machine between creating the segment and its first fsync), which
// cannot be told from a tail that held entries and was deleted.
//
// It returns the bytes it read.
func checkWALSegments(dir string, segs []types.SegmentInfo) (int64, error) {
	var read int64
	for i, si := range segs {
		path := filepath.Join(dir, segment.FileName(si))
		tail := si.SealTime.IsZero()
		if tail && i < len(segs)-1 {
			return read, fmt.Errorf("%w: %s: the meta file %s lists an unsealed segment before the last one", ErrWALDamaged, path, walMetaName)
		}
		if err := checkSegment(path, si, tail, &read); err != nil {
			return read, err
		}
	}
	return read, nil
}

// walMetaName is raft-wal's meta file (metadb.FileName).
const walMetaName = "wal-meta.db"

// checkSegment reads one segment file through and adds the bytes of
// header and frames it read to *read.
func checkSegment(path string, si types.SegmentInfo, tail bool, read *int64) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrWALDamaged, path, fmt.Sprintf(format, args...))
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		what := fmt.Sprintf("entries %d to %d", max(si.MinIndex, si.BaseIndex), si.MaxIndex)
		if tail {
			what = fmt.Sprintf("the newest entries, from %d on", si.BaseIndex)
		}
		return bad("the file is missing (the meta file lists it, holding %s)", what)
	}
	if err != nil {
		return fmt.Errorf("cluster: raft-wal segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cluster: raft-wal segment: %w", err)
	}
	size := st.Size()
	r := bufio.NewReaderSize(f, 1<<20)

	var hdr [segHeaderLen]byte
	n, err := io.ReadFull(r, hdr[:])
	if err != nil && !(tail && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF))) {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return bad("the file has %d bytes, too short for its header (truncated)", n)
		}
		return fmt.Errorf("cluster: raft-wal segment %s: %w", path, err)
	}
	headerErr := checkSegmentHeader(hdr[:], si)
	if !tail && headerErr != nil {
		return bad("%v", headerErr)
	}

	var (
		offset    = int64(segHeaderLen)
		crc       = crc32.Update(0, castagnoli, hdr[:n])
		entries   uint64 // entry frames so far
		committed uint64 // entries up to the last commit that checks
		commits   int
		lastBad   int64 = -1 // offset of a commit that failed its CRC
		sealed    bool
		frame     [frameHeaderLen]byte
		payload   []byte
	)
	defer func() { *read += offset }()
	stop := "" // why the walk ended early, for a sealed segment
walk:
	for {
		if _, err := io.ReadFull(r, frame[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				stop = fmt.Sprintf("the file ends at byte %d", offset)
				break
			}
			return fmt.Errorf("cluster: raft-wal segment %s: %w", path, err)
		}
		typ := frame[0]
		length := binary.LittleEndian.Uint32(frame[4:8])
		switch typ {
		case 0:
			if frame == [frameHeaderLen]byte{} {
				stop = fmt.Sprintf("zeros at byte %d", offset)
			} else {
				stop = fmt.Sprintf("a bad frame header at byte %d", offset)
			}
			break walk
		case frameEntry, frameIndex:
			if length > segment.MaxEntrySize {
				stop = fmt.Sprintf("a frame of %d bytes at byte %d", length, offset)
				break walk
			}
			padded := int(length) + (8-int(length)%8)%8
			if cap(payload) < padded {
				payload = make([]byte, padded)
			}
			payload = payload[:padded]
			if _, err := io.ReadFull(r, payload); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					stop = fmt.Sprintf("the file ends inside the frame at byte %d", offset)
					break walk
				}
				return fmt.Errorf("cluster: raft-wal segment %s: %w", path, err)
			}
			crc = crc32.Update(crc, castagnoli, frame[:])
			crc = crc32.Update(crc, castagnoli, payload)
			if typ == frameEntry {
				entries++
			} else {
				sealed = true
			}
			offset += int64(frameHeaderLen + padded)
		case frameCommit:
			if length != crc {
				if !tail {
					return bad("the commit at byte %d fails its checksum (the entries before it were changed)", offset)
				}
				if lastBad >= 0 {
					return bad("the commit at byte %d fails its checksum and is not the last one (damage, not a torn write)", lastBad)
				}
				lastBad = offset
			} else {
				if lastBad >= 0 {
					return bad("the commit at byte %d fails its checksum and is not the last one (damage, not a torn write)", lastBad)
				}
				committed = entries
			}
			commits++
			crc = 0
			offset += frameHeaderLen
			if sealed {
				break walk
			}
		default:
			stop = fmt.Sprintf("a frame of unknown type %d at byte %d", typ, offset)
			break walk
		}
	}

	if !tail {
		if !sealed {
			return bad("no index frame: the sealed segment ends early (%s; truncated or overwritten)", stop)
		}
		// A segment sealed by a tail truncation (raft deleting a
		// conflicting suffix) holds entries past MaxIndex: more is fine.
		if want := si.MaxIndex - si.BaseIndex + 1; si.MaxIndex >= si.BaseIndex && committed < want {
			return bad("it holds %d entries, the meta file says at least %d (entries %d to %d)", committed, want, si.BaseIndex, si.MaxIndex)
		}
		return nil
	}
	if size == 0 {
		return bad("the file is empty: it may have held the newest entries (raft-wal would start it afresh, taking it for a segment the machine crashed before writing)")
	}
	if size < int64(si.SizeLimit) {
		return bad("the file has %d bytes, fewer than the %d raft-wal allocated when it created it (truncated)", size, si.SizeLimit)
	}
	if commits == 0 || committed == 0 && lastBad >= 0 {
		// Nothing was committed here (or only a torn first batch):
		// raft-wal starts the tail afresh.
		return nil
	}
	if headerErr != nil {
		return bad("%v", headerErr)
	}
	return nil
}

// checkSegmentHeader compares a segment file's header with the meta
// file's record of it.
func checkSegmentHeader(b []byte, si types.SegmentInfo) error {
	if binary.LittleEndian.Uint64(b[0:8]) != segMagic || b[7] != segVersion {
		return errors.New("its header is not a raft-wal segment header")
	}
	if base, id, codec := binary.LittleEndian.Uint64(b[8:16]), binary.LittleEndian.Uint64(b[16:24]), binary.LittleEndian.Uint64(b[24:32]); base != si.BaseIndex || id != si.ID || codec != si.Codec {
		return fmt.Errorf("its header says base index %d, id %d, codec %d; the meta file says %d, %d, %d", base, id, codec, si.BaseIndex, si.ID, si.Codec)
	}
	return nil
}
