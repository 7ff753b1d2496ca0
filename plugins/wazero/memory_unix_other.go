//go:build unix && !linux

package wazero

// MAP_NORESERVE is Linux's; elsewhere untouched pages cost nothing anyway.
const mapNoReserve = 0
