// What this binary was built from, for the records' environment section. The commit is written into a
// generated source at every build (scripts/build_info.cmake), so a record never names a stale commit and a new
// commit recompiles one file, not the library.
#pragma once

namespace qb {

// "abc123def456", with "-dirty" when the tree had uncommitted changes to tracked files; on a copy without
// .git, $QB_GIT_COMMIT at build time (scripts/device-prep.sh writes it); else "unknown".
const char* build_git_commit();

}  // namespace qb
