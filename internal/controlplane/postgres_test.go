package controlplane_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mothership-dev/mothership/internal/controlplane/cptest"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
)

// TestServiceChainOnPostgres runs the main scenarios of the service chain
// again with every service's store on PostgreSQL, the production backend:
// each service its own database on a private server this test binary
// starts, CDC by logical replication. Every test of this package runs on
// SQLite, the embedded default; these on both.
func TestServiceChainOnPostgres(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(*testing.T)
	}{
		{"DedicatedClusterEndToEnd", TestDedicatedClusterEndToEnd},
		{"BasicTenantsShareAPKCAndStayIsolated", TestBasicTenantsShareAPKCAndStayIsolated},
		{"ResizeCoalesces", TestResizeCoalesces},
		{"DeleteFollowsByChoreography", TestDeleteFollowsByChoreography},
		{"NeighboursDoNotUnsettleAProvisionedCluster", TestNeighboursDoNotUnsettleAProvisionedCluster},
		{"EnvironmentKeepsWhatItHolds", TestEnvironmentKeepsWhatItHolds},
		{"DataPlaneOutlivesTheControlPlane", TestDataPlaneOutlivesTheControlPlane},
		{"Residency", TestResidency},
		{"RolesGrantWhatTheySay", TestRolesGrantWhatTheySay},
		{"OrganizationKeepsAnAdmin", TestOrganizationKeepsAnAdmin},
		{"AnotherOrganizationSeesNothing", TestAnotherOrganizationSeesNothing},
		{"AuditLog", TestAuditLog},
		{"AuditHidesSecretsAndHostileInput", TestAuditHidesSecretsAndHostileInput},
		{"SecretsNeverLogged", TestSecretsNeverLogged},
	}
	backend = cptest.Postgres
	t.Cleanup(func() { backend = cptest.SQLite })
	for _, sc := range scenarios {
		t.Run(sc.name, sc.run)
	}
	// Each scenario dropped its databases, and their replication slots
	// with them: a server has only so many, and a slot nobody reads keeps
	// WAL forever.
	conn, err := pgx.Connect(t.Context(), pgtest.Shared(t).URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var slots int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_replication_slots").Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 0 {
		t.Fatalf("%d replication slots are left after the scenarios", slots)
	}
}
