package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/sluice-io/sluice/internal/atomicfile"
)

// metadataFile holds the node's topic metadata. It is small and rewritten
// whole on every change: written to a temporary file, fsynced, renamed over
// the old one and the directory fsynced, so a crash leaves either the old or
// the new version. A CRC-32C over the body catches a damaged file, which
// stops the node rather than letting it forget topics.
const metadataFile = "topics.json"

// producerIDBlock is how many producer ids are reserved per metadata write:
// ids handed out after a restart start past the last reserved block, so they
// never repeat, while InitProducerId rarely touches the disk.
const producerIDBlock = 1000

type metadata struct {
	Topics []topicRecord `json:"topics"`
	// ClusterID is generated when the data directory is first used, so that
	// clients can tell two clusters apart.
	ClusterID string `json:"cluster_id"`
	// ProducerIDLimit is the first producer id not yet reserved.
	ProducerIDLimit int64 `json:"producer_id_limit"`
}

type topicRecord struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

type metadataEnvelope struct {
	CRC32C uint32          `json:"crc32c"`
	Body   json.RawMessage `json:"body"`
}

func loadMetadata(dir string) (metadata, error) {
	var md metadata
	raw, err := os.ReadFile(filepath.Join(dir, metadataFile))
	if errors.Is(err, os.ErrNotExist) {
		return md, nil
	}
	if err != nil {
		return md, err
	}
	var env metadataEnvelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return md, fmt.Errorf("%s is damaged: %w", metadataFile, err)
	}
	// The file is indented for people to read; the checksum covers the
	// compact form that saveMetadata hashed.
	var body bytes.Buffer
	if err := json.Compact(&body, env.Body); err != nil {
		return md, fmt.Errorf("%s is damaged: %w", metadataFile, err)
	}
	if got := crc32.Checksum(body.Bytes(), castagnoli); got != env.CRC32C {
		return md, fmt.Errorf("%s is damaged: checksum %08x, stored %08x", metadataFile, got, env.CRC32C)
	}
	if err := json.Unmarshal(env.Body, &md); err != nil {
		return md, fmt.Errorf("%s is damaged: %w", metadataFile, err)
	}
	return md, nil
}

func saveMetadata(dir string, md metadata) error {
	body, err := json.Marshal(md)
	if err != nil {
		return err
	}
	raw, err := json.MarshalIndent(metadataEnvelope{CRC32C: crc32.Checksum(body, castagnoli), Body: body}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, metadataFile), raw)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
