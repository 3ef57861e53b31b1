/*
 * core.h - umbrella header of the core module: Helix's file formats and performance model.
 *
 *   cfg.h      value grammar (§1.1) and INI documents with line numbers
 *   cluster.h  complete cluster files (§1.2), machine profiles (§1.3)
 *   model.h    model x GPU profiles and CSVs (§1.4-1.6), throughput model (§1.7), upper bound
 *   layout.h   placements (§1.8), simulator cluster files (§1.9), generate_simulator_cluster
 *
 * Conventions: functions return 0 or a negative HX_E* code and fill a caller-owned
 * struct hx_diag naming file:line:key; nothing prints; *_free(NULL) is a no-op; objects are
 * immutable after construction and may be shared read-only between threads.
 */
#ifndef HX_CORE_CORE_H
#define HX_CORE_CORE_H

#include "core/cfg.h"
#include "core/cluster.h"
#include "core/layout.h"
#include "core/model.h"

#endif
