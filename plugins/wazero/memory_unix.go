//go:build unix

package wazero

import "syscall"

// reserveMemory maps n bytes of private anonymous memory without reserving
// swap for it (MAP_NORESERVE): pages cost nothing until the guest touches
// them, so every instance can have its full limit as address space.
func reserveMemory(n uint64) ([]byte, error) {
	if n == 0 {
		return nil, syscall.EINVAL
	}
	return syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|mapNoReserve)
}

func releaseMemory(b []byte) { _ = syscall.Munmap(b) }
