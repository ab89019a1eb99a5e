// Words for the enums of the contracts.

import { AssetKind, RunState, StageKind, StageState } from "./gen/cadenza/v1/common_pb.js";
import { Project_State } from "./gen/cadenza/v1/project_pb.js";

export const STAGE_NAMES: Record<StageKind, string> = {
  [StageKind.UNSPECIFIED]: "Stage",
  [StageKind.LYRICS]: "Lyrics",
  [StageKind.COMPOSITION]: "Composition",
  [StageKind.ARRANGEMENT]: "Arrangement",
  [StageKind.VOCALS]: "Vocals",
  [StageKind.MIX]: "Mix",
  [StageKind.MASTER]: "Master",
};

/** Lower-case id used in test ids and stage resource names. */
export const STAGE_IDS: Record<StageKind, string> = {
  [StageKind.UNSPECIFIED]: "unspecified",
  [StageKind.LYRICS]: "lyrics",
  [StageKind.COMPOSITION]: "composition",
  [StageKind.ARRANGEMENT]: "arrangement",
  [StageKind.VOCALS]: "vocals",
  [StageKind.MIX]: "mix",
  [StageKind.MASTER]: "master",
};

export const STAGE_STATES: Record<StageState, string> = {
  [StageState.UNSPECIFIED]: "Unknown",
  [StageState.PENDING]: "Waiting",
  [StageState.QUEUED]: "Queued",
  [StageState.RUNNING]: "Running",
  [StageState.SUCCEEDED]: "Complete",
  [StageState.FAILED]: "Failed",
  [StageState.CANCELLED]: "Cancelled",
  [StageState.SKIPPED]: "Skipped",
};

export const STAGE_STATE_IDS: Record<StageState, string> = {
  [StageState.UNSPECIFIED]: "unknown",
  [StageState.PENDING]: "pending",
  [StageState.QUEUED]: "queued",
  [StageState.RUNNING]: "running",
  [StageState.SUCCEEDED]: "complete",
  [StageState.FAILED]: "failed",
  [StageState.CANCELLED]: "cancelled",
  [StageState.SKIPPED]: "skipped",
};

export const RUN_STATES: Record<RunState, string> = {
  [RunState.UNSPECIFIED]: "Not generated yet",
  [RunState.QUEUED]: "Queued",
  [RunState.RUNNING]: "Generating",
  [RunState.SUCCEEDED]: "Complete",
  [RunState.FAILED]: "Failed",
  [RunState.CANCELLED]: "Cancelled",
};

export const RUN_STATE_IDS: Record<RunState, string> = {
  [RunState.UNSPECIFIED]: "none",
  [RunState.QUEUED]: "queued",
  [RunState.RUNNING]: "running",
  [RunState.SUCCEEDED]: "complete",
  [RunState.FAILED]: "failed",
  [RunState.CANCELLED]: "cancelled",
};

export const PROJECT_STATES: Record<Project_State, string> = {
  [Project_State.UNSPECIFIED]: "Unknown",
  [Project_State.DRAFT]: "Draft",
  [Project_State.GENERATING]: "Generating",
  [Project_State.READY]: "Ready",
  [Project_State.FAILED]: "Failed",
  [Project_State.CANCELLED]: "Cancelled",
};

export const ASSET_NAMES: Partial<Record<AssetKind, string>> = {
  [AssetKind.MASTER]: "Master (WAV)",
  [AssetKind.MASTER_FLAC]: "Master (FLAC)",
  [AssetKind.PREVIEW]: "Preview",
  [AssetKind.STEM]: "Stem",
  [AssetKind.MIDI]: "MIDI",
  [AssetKind.LYRICS]: "Lyrics",
  [AssetKind.VOCALS]: "Vocals (WAV)",
  [AssetKind.MIX]: "Unmastered mix (WAV)",
};

export const ASSET_IDS: Partial<Record<AssetKind, string>> = {
  [AssetKind.MASTER]: "master",
  [AssetKind.MASTER_FLAC]: "master-flac",
  [AssetKind.PREVIEW]: "preview",
  [AssetKind.STEM]: "stem",
  [AssetKind.MIDI]: "midi",
  [AssetKind.LYRICS]: "lyrics",
  [AssetKind.VOCALS]: "vocals",
  [AssetKind.MIX]: "mix",
};
