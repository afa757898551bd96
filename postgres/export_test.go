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
