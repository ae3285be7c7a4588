//go:build !linux

package storage

import (
	"errors"
	"os"
)

// mapFile is not available here: Verify reads pages with ReadAt.
func mapFile(*os.File, int64) ([]byte, func(), error) {
	return nil, nil, errors.New("not supported")
}
