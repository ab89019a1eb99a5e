DROP TABLE stage_provenance;
