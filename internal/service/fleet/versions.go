package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/kafkaversion"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// VersionsPath is where the Kafka versions are read and the default set.
const VersionsPath = "/fleet/v1/versions"

// Versions are the Kafka versions the installation can run and the one
// new clusters get.
type Versions struct {
	APIVersion string               `json:"api_version"`
	Kind       string               `json:"kind"`
	Default    string               `json:"default"`
	Data       []kafkaversion.Entry `json:"data"`
}

// VersionsUpdate sets the default.
type VersionsUpdate struct {
	Default string `json:"default"`
}

// GetVersions answers GET /fleet/v1/versions.
func (s *Service) GetVersions(ctx context.Context, p svcapi.Principal) (Versions, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return Versions{}, err
	}
	out := Versions{APIVersion: "fleet/v1", Kind: "VersionList", Data: kafkaversion.Catalog()}
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		out.Default, err = defaultVersion(ctx, tx)
		return err
	})
	return out, err
}

func defaultVersion(ctx context.Context, tx store.Tx) (string, error) {
	r, err := tx.ResourceGet(ctx, resource.KindVersions, resource.VersionsID)
	if errors.Is(err, store.ErrNotFound) {
		return kafkaversion.Default, nil
	}
	if err != nil {
		return "", err
	}
	vs, err := resource.Decode[resource.VersionsSpec](r.Spec)
	return cmp.Or(vs.Default, kafkaversion.Default), err
}

// SetVersions answers PATCH /fleet/v1/versions: the default version for
// new clusters, which the pkc service reads when it places one.
func (s *Service) SetVersions(ctx context.Context, p svcapi.Principal, in VersionsUpdate) (Versions, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return Versions{}, err
	}
	if !kafkaversion.Known(in.Default) {
		var vs []string
		for _, e := range kafkaversion.Catalog() {
			vs = append(vs, e.Version)
		}
		return Versions{}, api.Invalid("/default", "default %q is not a Kafka version Mothership runs; choose one of %s", in.Default, strings.Join(vs, ", "))
	}
	spec := resource.Encode(resource.VersionsSpec{Default: in.Default})
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceGet(ctx, resource.KindVersions, resource.VersionsID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			_, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindVersions, ID: resource.VersionsID, Spec: spec})
		case err == nil:
			_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindVersions, ID: resource.VersionsID, Spec: spec})
		}
		if err != nil {
			return fmt.Errorf("versions: %w", err)
		}
		return nil
	})
	if err != nil {
		return Versions{}, err
	}
	s.log.InfoContext(ctx, "default Kafka version set", "version", in.Default, "actor", p.Owner)
	return s.GetVersions(ctx, p)
}
