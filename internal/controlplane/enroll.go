package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mothership-dev/mothership/internal/runtime/atomicfile"

	"github.com/mothership-dev/mothership/internal/resource"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// SitesFile is the enrollment of every satellite, in a distributed
// deployment's setup directory: what sync needs to recognise a satellite
// (its token's hash) and what iam needs to seal credentials to it (its
// public key). Neither is a secret.
const SitesFile = "sites.json"

// Enrollment is one satellite's public half.
type Enrollment struct {
	Site      string `json:"site"`
	TokenHash string `json:"token_sha256"`
	PublicKey []byte `json:"public_key"`
}

// SatelliteDir is where a site's satellite keeps its token, key, bundle
// and clusters, under a data dir.
func SatelliteDir(dataDir string, site resource.Site) string {
	return filepath.Join(dataDir, "satellites", siteDir(site))
}

// Enroll creates, or reads back, the token and key of each site's satellite
// under dataDir, and returns their public halves.
func Enroll(dataDir string, sites []resource.Site) ([]Enrollment, error) {
	var out []Enrollment
	for _, site := range sites {
		dir := SatelliteDir(dataDir, site)
		token, err := satelliteToken(dir)
		if err != nil {
			return nil, err
		}
		key, err := sitekey.LoadOrCreate(dir)
		if err != nil {
			return nil, err
		}
		out = append(out, Enrollment{Site: site.String(), TokenHash: syncsvc.HashToken(token), PublicKey: key.Public()})
	}
	return out, nil
}

// WriteSites writes enrollments to path.
func WriteSites(path string, es []Enrollment) error {
	b, err := json.MarshalIndent(es, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("controlplane: write %s: %w", path, err)
	}
	return nil
}

// ReadSites reads the enrollments setup wrote.
func ReadSites(path string) ([]Enrollment, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("controlplane: sites: %w (run `mothership setup` to enroll the satellites)", err)
	}
	var es []Enrollment
	if err := json.Unmarshal(b, &es); err != nil {
		return nil, fmt.Errorf("controlplane: sites %s: %w", path, err)
	}
	for _, e := range es {
		if _, err := resource.ParseSite(e.Site); err != nil || e.TokenHash == "" || len(e.PublicKey) == 0 {
			return nil, fmt.Errorf("controlplane: sites %s: entry %q needs a site (cloud/region), token_sha256 and public_key", path, e.Site)
		}
	}
	return es, nil
}

// satellites returns what sync knows of each enrolled satellite.
func satellites(es []Enrollment) ([]syncsvc.Satellite, error) {
	var out []syncsvc.Satellite
	for _, e := range es {
		site, err := resource.ParseSite(e.Site)
		if err != nil {
			return nil, err
		}
		out = append(out, syncsvc.Satellite{Site: site, TokenHash: e.TokenHash, PublicKey: slices.Clone(e.PublicKey)})
	}
	return out, nil
}

// ReadToken reads a secret kept in a file of its own (a satellite's token,
// the internal token), trimmed.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("controlplane: token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", errors.New("controlplane: token file " + path + " is empty")
	}
	return t, nil
}
