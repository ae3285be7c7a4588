package loadgen

import (
	"fmt"
	"strings"

	"github.com/shelfdb/shelf/api"
)

// Value returns a Shelf record value (CBOR, a map {"v": "xxx..."}) of
// exactly size bytes encoded, the record size of a load. The smallest
// possible is 4 bytes.
func Value(size int) ([]byte, error) {
	if size < 4 {
		return nil, fmt.Errorf("%w: value size %d (at least 4 bytes)", ErrBadConfig, size)
	}
	// A text string's CBOR header grows with its length (1, 2, 3 or 5
	// bytes), so shrink the padding until the whole fits exactly.
	for pad := size; pad >= 0; pad-- {
		b, err := api.EncodeValue(map[string]any{"v": strings.Repeat("x", pad)})
		if err != nil {
			return nil, fmt.Errorf("loadgen: value: %w", err)
		}
		if len(b) == size {
			return b, nil
		}
		if len(b) < size {
			break
		}
	}
	return nil, fmt.Errorf("%w: no value of exactly %d bytes", ErrBadConfig, size)
}
