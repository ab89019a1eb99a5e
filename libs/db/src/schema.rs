// The diesel view of `migrations/`. Kept in step with the SQL by the
// `schema_matches_the_database` test, which fails on any column that differs.

diesel::table! {
    projects (id) {
        id -> Uuid,
        owner -> Text,
        title -> Text,
        prompt -> Text,
        duration_seconds -> Int4,
        has_vocals -> Bool,
        style_strength -> Float4,
        seed -> Nullable<Int8>,
        lyrics -> Nullable<Text>,
        state -> Text,
        latest_run_id -> Nullable<Uuid>,
        last_event_seq -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        objects_released_at -> Nullable<Timestamptz>,
        title_derived -> Bool,
    }
}

diesel::table! {
    runs (id) {
        id -> Uuid,
        project_id -> Uuid,
        owner -> Text,
        state -> Text,
        prompt -> Text,
        duration_seconds -> Int4,
        has_vocals -> Bool,
        style_strength -> Float4,
        seed -> Int8,
        lyrics -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    stages (id) {
        id -> Uuid,
        run_id -> Uuid,
        kind -> Text,
        state -> Text,
        attempt -> Int4,
        progress -> Float4,
        provider -> Text,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        queued_at -> Nullable<Timestamptz>,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        heartbeat_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    stage_provenance (stage_id) {
        stage_id -> Uuid,
        run_id -> Uuid,
        kind -> Text,
        attempt -> Int4,
        provider -> Text,
        provider_version -> Text,
        provider_job_id -> Text,
        inputs -> Jsonb,
        outputs -> Jsonb,
        completed_at -> Timestamptz,
    }
}

diesel::table! {
    dead_letters (id) {
        id -> Uuid,
        message_id -> Text,
        kind -> Text,
        routing_key -> Text,
        reason -> Text,
        run_id -> Nullable<Uuid>,
        stage_id -> Nullable<Uuid>,
        payload -> Bytea,
        created_at -> Timestamptz,
        requeued_at -> Nullable<Timestamptz>,
        dismissed_at -> Nullable<Timestamptz>,
        dismiss_reason -> Nullable<Text>,
    }
}

diesel::table! {
    stage_events (project_id, seq) {
        project_id -> Uuid,
        seq -> Int8,
        run_id -> Uuid,
        event_type -> Text,
        stage_kind -> Nullable<Text>,
        stage_state -> Nullable<Text>,
        run_state -> Text,
        progress -> Float4,
        attempt -> Int4,
        message -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    assets (id) {
        id -> Uuid,
        project_id -> Uuid,
        run_id -> Uuid,
        stage_kind -> Text,
        kind -> Text,
        file_name -> Text,
        object_key -> Text,
        content_type -> Text,
        size_bytes -> Int8,
        sha256 -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    job_logs (id) {
        id -> Int8,
        run_id -> Uuid,
        stage_kind -> Text,
        attempt -> Int4,
        severity -> Int2,
        message -> Text,
        logged_at -> Timestamptz,
        provider -> Text,
        provider_job_id -> Text,
        error_code -> Text,
        worker_id -> Text,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        message_id -> Uuid,
        exchange -> Text,
        routing_key -> Text,
        payload -> Bytea,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        relay_after -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    idempotency_keys (owner, method, request_id) {
        owner -> Text,
        method -> Text,
        request_id -> Text,
        request_hash -> Text,
        resource_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    inbox (message_id) {
        message_id -> Uuid,
        processed_at -> Timestamptz,
    }
}

diesel::table! {
    storage_objects (key) {
        key -> Text,
        owner -> Text,
        project_id -> Uuid,
        run_id -> Uuid,
        size_bytes -> Int8,
        sha256 -> Text,
        content_type -> Text,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    storage_grants (id) {
        id -> Uuid,
        token -> Text,
        owner -> Text,
        keys -> Array<Text>,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    storage_deleted_projects (owner, project_id) {
        owner -> Text,
        project_id -> Uuid,
        deleted_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        created_at -> Timestamptz,
        accepted_terms_version -> Nullable<Text>,
        terms_accepted_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
        plan -> Text,
        purged_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    share_links (id) {
        id -> Uuid,
        token -> Text,
        owner -> Text,
        project_id -> Uuid,
        run_id -> Uuid,
        message -> Text,
        created_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        family_id -> Uuid,
        user_id -> Uuid,
        token_hash -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    login_failures (key) {
        key -> Text,
        failures -> Int4,
        last_failure_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        user_id -> Uuid,
        display_name -> Text,
        prefix -> Text,
        key_hash -> Text,
        scopes -> Array<Text>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Uuid,
        actor -> Text,
        action -> Text,
        target -> Text,
        client_address -> Nullable<Text>,
        detail -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    credit_balances (owner) {
        owner -> Text,
        balance -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    credit_ledger (id) {
        id -> Uuid,
        owner -> Text,
        run_id -> Nullable<Uuid>,
        kind -> Text,
        amount -> Int8,
        actor -> Text,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(runs -> projects (project_id));
diesel::joinable!(stages -> runs (run_id));
diesel::joinable!(assets -> projects (project_id));
diesel::joinable!(job_logs -> runs (run_id));
diesel::joinable!(share_links -> projects (project_id));
diesel::joinable!(stage_provenance -> runs (run_id));

diesel::allow_tables_to_appear_in_same_query!(
    projects,
    runs,
    stages,
    stage_events,
    assets,
    job_logs,
    outbox,
    idempotency_keys,
    inbox,
    storage_objects,
    storage_deleted_projects,
    storage_grants,
    users,
    refresh_tokens,
    login_failures,
    api_keys,
    audit_events,
    credit_balances,
    credit_ledger,
    share_links,
    stage_provenance,
    dead_letters,
);
