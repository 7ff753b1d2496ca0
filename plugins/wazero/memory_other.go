//go:build !unix

package wazero

import "errors"

// reserveMemory is not available: memory grows by copying.
func reserveMemory(uint64) ([]byte, error) { return nil, errors.New("no mmap") }

func releaseMemory([]byte) {}
