package postgres

// VersionAction lets the external tests hold the SQL version rule against
// its Go twin.
var VersionAction = versionAction

const (
	ActionApply     = actionApply
	ActionDuplicate = actionDuplicate
	ActionStale     = actionStale
)

// SQLStartOfDate is the SQL twin of policy.StartOfDate, for its test.
var SQLStartOfDate = sqlStartOfDate

// ReportChunk is how many accounts one COPY of the report reads.
const ReportChunk = reportChunk

// StatementSQL is the SQL of the declared statement named name, for the
// tests that read its plan.
func StatementSQL(name string) string {
	for _, st := range statements {
		if st.name == name {
			return st.query
		}
	}
	panic("no statement " + name)
}
