//! openapi: the OpenAPI 3.1 document of the HTTP API, generated from the code — schemas from
//! the model types' `ToSchema` derives, paths from the same `RESOURCES` table the router uses.

use crate::api::{ApiKeyCreated, ApiKeyPatch, NewApiKey, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, RESOURCES};
use crate::error::ErrorBody;
use adp_domain::{
    AdvertiserSpec, ApiKey, CampaignSpec, CatalogChange, CreativeSpec, Kind, LineItemSpec, PlacementSpec,
    PublisherSpec, SiteSpec, StoreHealth,
};
use serde_json::{json, Map, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

fn collect<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    T::schemas(out);
    out.push((T::name().to_string(), T::schema()));
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn error_responses(codes: &[(&str, &str)]) -> Map<String, Value> {
    codes
        .iter()
        .map(|(code, why)| {
            ((*code).to_string(), json!({"description": why, "content": json_content(schema_ref("ErrorBody"))}))
        })
        .collect()
}

fn ok(code: &str, why: &str, schema: Value, more: &[(&str, &str)]) -> Value {
    let mut r = error_responses(more);
    r.insert(code.to_string(), json!({"description": why, "content": json_content(schema)}));
    r.insert(
        "401".into(),
        json!({"description": "missing, unknown or revoked API key", "content": json_content(schema_ref("ErrorBody"))}),
    );
    Value::Object(r)
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}})
}

fn if_match_param() -> Value {
    json!({"name": "If-Match", "in": "header", "required": false,
           "description": "the version you read, e.g. \"3\"; instead of `version` in the body",
           "schema": {"type": "string"}})
}

fn spec_schema_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Advertiser => "AdvertiserSpec",
        Kind::Campaign => "CampaignSpec",
        Kind::LineItem => "LineItemSpec",
        Kind::Creative => "CreativeSpec",
        Kind::Publisher => "PublisherSpec",
        Kind::Site => "SiteSpec",
        Kind::Placement => "PlacementSpec",
    }
}

fn paging_params(filters: &[(&str, crate::api::FilterTarget)]) -> Vec<Value> {
    let mut params = vec![
        query_param(
            "limit",
            "page size",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}),
        ),
        query_param("cursor", "the `next_cursor` of the previous page", json!({"type": "string"})),
    ];
    for (name, _) in filters {
        params.push(query_param(name, "only objects under this parent", json!({"type": "string"})));
    }
    params
}

/// Builds the whole document.
pub fn document() -> Value {
    let mut collected = Vec::new();
    collect::<AdvertiserSpec>(&mut collected);
    collect::<CampaignSpec>(&mut collected);
    collect::<LineItemSpec>(&mut collected);
    collect::<CreativeSpec>(&mut collected);
    collect::<PublisherSpec>(&mut collected);
    collect::<SiteSpec>(&mut collected);
    collect::<PlacementSpec>(&mut collected);
    collect::<adp_domain::Expr>(&mut collected);
    collect::<adp_domain::targeting::KeyValues>(&mut collected);
    collect::<adp_domain::targeting::Daypart>(&mut collected);
    collect::<ApiKey>(&mut collected);
    collect::<ApiKeyCreated>(&mut collected);
    collect::<NewApiKey>(&mut collected);
    collect::<ApiKeyPatch>(&mut collected);
    collect::<ErrorBody>(&mut collected);
    collect::<StoreHealth>(&mut collected);
    collect::<CatalogChange>(&mut collected);
    collect::<crate::serving::DecideRequest>(&mut collected);
    collect::<crate::serving::DecideResponse>(&mut collected);
    collect::<adp_domain::DeliveryRow>(&mut collected);
    let mut schemas = Map::new();
    for (name, schema) in collected {
        schemas.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    schemas.insert(
        "ObjectMeta".into(),
        json!({"type": "object", "description": "fields the platform sets; send them back unchanged or not at all",
               "required": ["id", "version", "created_at", "updated_at", "catalog_version"],
               "properties": {
                   "id": {"type": "string", "readOnly": true},
                   "version": {"type": "integer", "minimum": 1, "readOnly": true,
                               "description": "optimistic-concurrency version; send it with every write"},
                   "created_at": {"type": "string", "format": "date-time", "readOnly": true},
                   "updated_at": {"type": "string", "format": "date-time", "readOnly": true},
                   "catalog_version": {"type": "integer", "readOnly": true,
                                       "description": "catalog version at which the object last changed"}}}),
    );
    let mut paths = Map::new();
    for res in RESOURCES {
        let spec = spec_schema_name(res.kind);
        let mut parts = vec![schema_ref(spec), schema_ref("ObjectMeta")];
        match res.kind {
            Kind::LineItem => parts
                .push(json!({"type": "object", "properties": {"advertiser_id": {"type": "string", "readOnly": true}}})),
            Kind::Placement => parts
                .push(json!({"type": "object", "properties": {"publisher_id": {"type": "string", "readOnly": true}}})),
            _ => {}
        }
        schemas.insert(res.schema.into(), json!({"allOf": parts}));
        let list_name = format!("{}List", res.schema);
        schemas.insert(
            list_name.clone(),
            json!({"type": "object", "required": ["items"], "properties": {
                "items": {"type": "array", "items": schema_ref(res.schema)},
                "next_cursor": {"type": ["string", "null"], "description": "pass as `cursor` for the next page; null on the last"}}}),
        );
        let create_body = json!({"allOf": [schema_ref(spec), {"type": "object", "properties": {
            "id": {"type": "string", "description": "optional client-chosen id (letters, digits, -_.:); generated when absent"}}}]});
        let patch_body = json!({"type": "object", "required": [], "description": format!(
            "JSON merge patch (RFC 7396) over {spec}: send only the fields to change, plus `version` (or If-Match); `targeting` and `content` are replaced whole, null removes an optional field"),
            "properties": {"version": {"type": "integer", "minimum": 1}}, "additionalProperties": true});
        let tag = res.segment;
        let mut list_params = paging_params(res.filters);
        list_params.push(query_param(
            "status",
            "only this status; by default everything but archived",
            json!({"type": "string", "enum": ["active", "paused", "archived"]}),
        ));
        let base = format!("/api/v1/{}", res.segment);
        paths.insert(base.clone(), json!({
            "post": {"tags": [tag], "operationId": format!("create_{}", res.kind.as_str()), "summary": format!("create a {}", res.kind.as_str()),
                     "requestBody": {"required": true, "content": json_content(create_body)},
                     "responses": ok("201", "created", schema_ref(res.schema), &[("400", "malformed request or invalid field"), ("403", "not permitted for this key"), ("409", "id already taken"), ("413", "body too large"), ("422", "invalid or missing reference")])},
            "get": {"tags": [tag], "operationId": format!("list_{}", res.kind.as_str()), "summary": format!("list {}", res.segment),
                    "parameters": list_params,
                    "responses": ok("200", "one page", schema_ref(&list_name), &[("400", "unknown or invalid parameter"), ("403", "not permitted for this key")])},
        }));
        paths.insert(format!("{base}/{{id}}"), json!({
            "get": {"tags": [tag], "operationId": format!("get_{}", res.kind.as_str()), "parameters": [id_param()],
                    "responses": ok("200", "the object", schema_ref(res.schema), &[("404", "no such object (or another tenant's)")])},
            "patch": {"tags": [tag], "operationId": format!("update_{}", res.kind.as_str()), "parameters": [id_param(), if_match_param()],
                      "requestBody": {"required": true, "content": {"application/merge-patch+json": {"schema": patch_body.clone()}, "application/json": {"schema": patch_body}}},
                      "responses": ok("200", "the updated object", schema_ref(res.schema), &[("400", "invalid field"), ("404", "no such object"), ("409", "stale version"), ("413", "body too large"), ("422", "invalid change"), ("428", "no version sent")])},
            "delete": {"tags": [tag], "operationId": format!("delete_{}", res.kind.as_str()), "summary": "archive (soft delete), same as POST .../archive",
                       "parameters": [id_param(), if_match_param()],
                       "responses": ok("200", "the archived object", schema_ref(res.schema), &[("404", "no such object"), ("409", "stale version")])},
        }));
        paths.insert(format!("{base}/{{id}}/archive"), json!({
            "post": {"tags": [tag], "operationId": format!("archive_{}", res.kind.as_str()), "summary": "archive (soft delete); idempotent",
                     "parameters": [id_param(), if_match_param()],
                     "responses": ok("200", "the archived object", schema_ref(res.schema), &[("404", "no such object"), ("409", "stale version")])},
        }));
    }
    schemas.insert(
        "ApiKeyList".into(),
        json!({"type": "object", "properties": {"items": {"type": "array", "items": schema_ref("ApiKey")}, "next_cursor": {"type": ["string", "null"]}}}),
    );
    let tag = "api-keys";
    paths.insert("/api/v1/api-keys".into(), json!({
        "post": {"tags": [tag], "operationId": "create_api_key", "summary": "create a key (admin); the secret is returned once",
                 "requestBody": {"required": true, "content": json_content(schema_ref("NewApiKey"))},
                 "responses": ok("201", "created", schema_ref("ApiKeyCreated"), &[("400", "invalid field"), ("403", "admin only"), ("422", "unknown advertiser")])},
        "get": {"tags": [tag], "operationId": "list_api_keys", "parameters": paging_params(&[("advertiser_id", crate::api::FilterTarget::Owner)]),
                "responses": ok("200", "one page", schema_ref("ApiKeyList"), &[("403", "admin only")])},
    }));
    paths.insert("/api/v1/api-keys/{id}".into(), json!({
        "get": {"tags": [tag], "operationId": "get_api_key", "parameters": [id_param()],
                "responses": ok("200", "the key (never its secret)", schema_ref("ApiKey"), &[("403", "admin only"), ("404", "no such key")])},
        "patch": {"tags": [tag], "operationId": "update_api_key", "parameters": [id_param(), if_match_param()],
                  "requestBody": {"required": true, "content": json_content(schema_ref("ApiKeyPatch"))},
                  "responses": ok("200", "the key", schema_ref("ApiKey"), &[("403", "admin only"), ("404", "no such key"), ("409", "stale version")])},
    }));
    paths.insert("/api/v1/api-keys/{id}/archive".into(), json!({
        "post": {"tags": [tag], "operationId": "revoke_api_key", "summary": "revoke the key", "parameters": [id_param(), if_match_param()],
                 "responses": ok("200", "the revoked key", schema_ref("ApiKey"), &[("403", "admin only"), ("404", "no such key")])},
    }));
    let open = json!([]);
    schemas.insert("CatalogVersion".into(), json!({"type": "object", "required": ["version"], "properties": {"version": {"type": "integer", "minimum": 0}}}));
    paths.insert("/api/v1/catalog/version".into(), json!({"get": {"tags": ["operations"], "operationId": "catalog_version", "security": open,
        "summary": "the catalog version (count of committed changes)", "responses": {"200": {"description": "version", "content": json_content(schema_ref("CatalogVersion"))}}}}));
    paths.insert("/healthz".into(), json!({"get": {"tags": ["operations"], "operationId": "healthz", "security": open, "summary": "the process is alive",
        "responses": {"200": {"description": "alive"}}}}));
    schemas.insert(
        "Readiness".into(),
        json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["ready", "not_ready"]},
        "checks": {"type": "object", "properties": {"catalog_store": schema_ref("StoreHealth")}}}}),
    );
    paths.insert(
        "/readyz".into(),
        json!({"get": {"tags": ["operations"], "operationId": "readyz", "security": open,
        "summary": "dependencies reachable and migrations current",
        "responses": {"200": {"description": "ready", "content": json_content(schema_ref("Readiness"))},
                      "503": {"description": "not ready", "content": json_content(schema_ref("Readiness"))}}}}),
    );
    paths.insert("/metrics".into(), json!({"get": {"tags": ["operations"], "operationId": "metrics", "security": open,
        "summary": "serving, bidder, event and Kafka counters (OpenMetrics text)", "responses": {"200": {"description": "OpenMetrics text"}}}}));
    paths.insert(
        "/api/v1/openapi.json".into(),
        json!({"get": {"tags": ["operations"], "operationId": "openapi", "security": open,
        "summary": "this document", "responses": {"200": {"description": "OpenAPI 3.1 document"}}}}),
    );
    let serving = "serving";
    paths.insert("/v1/decide".into(), json!({
        "post": {"tags": [serving], "operationId": "decide", "security": open.clone(),
                 "summary": "choose one ad per placement (any content type is accepted, so browsers need no preflight)",
                 "requestBody": {"required": true, "content": json_content(schema_ref("DecideRequest"))},
                 "responses": {"200": {"description": "one decision per placement", "content": json_content(schema_ref("DecideResponse"))},
                               "400": {"description": "malformed request", "content": json_content(schema_ref("ErrorBody"))},
                               "413": {"description": "body too large", "content": json_content(schema_ref("ErrorBody"))}}},
        "get": {"tags": [serving], "operationId": "decide_get", "security": open.clone(), "summary": "decide for simple tags",
                "parameters": [
                    query_param("placement", "placement id (repeatable)", json!({"type": "string"})),
                    query_param("uid", "user id", json!({"type": "string"})),
                    query_param("seg", "audience segment (repeatable)", json!({"type": "string"})),
                    query_param("url", "page URL", json!({"type": "string"})),
                    query_param("bundle", "app bundle", json!({"type": "string"})),
                    query_param("country", "ISO 3166-1 alpha-2", json!({"type": "string"})),
                    query_param("region", "region code", json!({"type": "string"})),
                    query_param("ip", "device IP", json!({"type": "string"})),
                    query_param("lang", "language", json!({"type": "string"})),
                    query_param("deal", "deal id (repeatable)", json!({"type": "string"})),
                    query_param("kv", "key:value (repeatable)", json!({"type": "string"})),
                    query_param("test", "1 to decide without counting", json!({"type": "string"}))],
                "responses": {"200": {"description": "one decision per placement", "content": json_content(schema_ref("DecideResponse"))},
                              "400": {"description": "malformed request", "content": json_content(schema_ref("ErrorBody"))}}},
    }));
    let tracking_params = json!([
        {"name": "p", "in": "query", "required": true, "schema": {"type": "string"}, "description": "signed payload"},
        {"name": "s", "in": "query", "required": true, "schema": {"type": "string"}, "description": "HMAC-SHA256 signature"}]);
    let tracking_errors = |ok: Value| {
        let mut r = error_responses(&[
            ("400", "tampered or malformed"),
            ("409", "already counted"),
            ("410", "expired"),
            ("503", "event queue full; retry"),
        ]);
        if let Value::Object(o) = ok {
            r.extend(o);
        }
        Value::Object(r)
    };
    let mut imp_params = tracking_params.clone();
    if let Some(a) = imp_params.as_array_mut() {
        a.push(json!({"name": "f", "in": "query", "required": false, "schema": {"type": "string", "enum": ["gif"]}, "description": "answer with a 1x1 GIF"}));
    }
    paths.insert("/v1/t/imp".into(), json!({"get": {"tags": [serving], "operationId": "track_impression", "security": open.clone(),
        "summary": "count an impression (spends CPM budgets)", "parameters": imp_params,
        "responses": tracking_errors(json!({"204": {"description": "counted"}, "200": {"description": "counted (GIF)"}}))}}));
    paths.insert(
        "/v1/t/click".into(),
        json!({"get": {"tags": [serving], "operationId": "track_click", "security": open.clone(),
        "summary": "count a click (spends CPC budgets) and redirect", "parameters": tracking_params,
        "responses": tracking_errors(json!({"302": {"description": "counted; Location is the landing page"}}))}}),
    );
    paths.insert("/openrtb2/bid".into(), json!({"post": {"tags": ["openrtb"], "operationId": "openrtb_bid", "security": open.clone(),
        "summary": "OpenRTB 2.5/2.6 bid request (Content-Encoding: gzip accepted; gzip answers when Accept-Encoding allows; x-openrtb-version: 2.6)",
        "requestBody": {"required": true, "content": json_content(json!({"description": "an OpenRTB 2.6 BidRequest (IAB schema BidRequest.json)", "type": "object"}))},
        "responses": {"200": {"description": "a BidResponse; or, in nbr mode (rtb.no_bid = \"nbr\"), a no-bid with nbr and ext.adplatform.reason",
                              "content": json_content(json!({"description": "an OpenRTB 2.6 BidResponse (IAB schema BidResponse.json)", "type": "object"}))},
                      "204": {"description": "no bid (default no-bid mode)"},
                      "400": {"description": "malformed JSON, or a request the spec calls invalid (field named)", "content": json_content(schema_ref("ErrorBody"))},
                      "413": {"description": "body too large", "content": json_content(schema_ref("ErrorBody"))},
                      "415": {"description": "unsupported Content-Encoding"}}}}));
    for (path, op, summary) in [
        ("/v1/rtb/win", "rtb_win_notice", "win notice (nurl): books spend at the clearing price when rtb.bill_on = win; in adm_in_win_notice mode answers with the markup"),
        ("/v1/rtb/bill", "rtb_billing_notice", "billing notice (burl): books spend at the clearing price (rtb.bill_on = billing, the default) and counts the impression"),
        ("/v1/rtb/loss", "rtb_loss_notice", "loss notice (lurl): gives back the bid's reserved spend; `loss` is the loss reason code"),
    ] {
        let mut params = tracking_params.clone();
        if let Value::Array(a) = &mut params {
            a.push(json!({"name": "price", "in": "query", "required": false, "schema": {"type": "string"},
                          "description": "${AUCTION_PRICE}: the clearing price, CPM in the bid currency"}));
            a.push(json!({"name": "loss", "in": "query", "required": false, "schema": {"type": "string"},
                          "description": "${AUCTION_LOSS}: the loss reason code"}));
        }
        paths.insert(path.into(), json!({"get": {"tags": ["openrtb"], "operationId": op, "security": open.clone(), "summary": summary,
            "parameters": params,
            "responses": tracking_errors(json!({"204": {"description": "counted"}, "200": {"description": "counted; the ad markup (win, adm_in_win_notice mode)"}}))}}));
    }
    let conv_responses = {
        let mut r = error_responses(&[("400", "bad parameter"), ("409", "order already counted")]);
        r.insert("204".into(), json!({"description": "counted"}));
        r.insert("200".into(), json!({"description": "counted (GIF)"}));
        Value::Object(r)
    };
    paths.insert("/v1/t/conv".into(), json!({"get": {"tags": ["conversions"], "operationId": "conversion_pixel", "security": open.clone(),
        "summary": "the advertiser's conversion pixel: credited to the click named by `click` (the landing URL's adp_click), else the user's last click (or view)",
        "parameters": [query_param("adv", "advertiser id", json!({"type": "string"})),
                       query_param("order", "order id; each counts once", json!({"type": "string"})),
                       query_param("value", "value in currency units, e.g. 49.90", json!({"type": "string"})),
                       query_param("cur", "ISO 4217, default the platform currency", json!({"type": "string"})),
                       query_param("click", "click id (adp_click)", json!({"type": "string"})),
                       query_param("uid", "user id", json!({"type": "string"})),
                       query_param("f", "gif: answer with a 1x1 GIF", json!({"type": "string"}))],
        "responses": conv_responses}}));
    schemas.insert("ConversionRequest".into(), json!({"type": "object", "required": ["advertiser_id", "order_id"], "properties": {
        "advertiser_id": {"type": "string"}, "order_id": {"type": "string"}, "click_id": {"type": "string"}, "user_id": {"type": "string"},
        "value_micros": {"type": "integer", "minimum": 0}, "currency": {"type": "string"}}}));
    schemas.insert("ConversionResult".into(), json!({"type": "object", "properties": {
        "conversion_id": {"type": "string"}, "attributed": {"type": "boolean"}, "credit": {"type": ["string", "null"], "enum": ["click", "view", null]},
        "line_item_id": {"type": ["string", "null"]}, "decision_id": {"type": ["string", "null"]}, "value_micros": {"type": "integer"}}}));
    paths.insert("/v1/conversions".into(), json!({"post": {"tags": ["conversions"], "operationId": "report_conversion",
        "summary": "a conversion reported server to server (an advertiser key reports its own)",
        "requestBody": {"required": true, "content": json_content(schema_ref("ConversionRequest"))},
        "responses": ok("202", "recorded", schema_ref("ConversionResult"), &[("400", "bad field"), ("403", "another advertiser's"), ("409", "order already counted")])}}));
    schemas.insert("DeliveryReport".into(), json!({"type": "object", "properties": {"from": {"type": "string", "format": "date-time"},
        "to": {"type": "string", "format": "date-time"}, "rows": {"type": "array", "items": schema_ref("DeliveryRow")}}}));
    paths.insert("/api/v1/reports/delivery".into(), json!({"get": {"tags": ["reports"], "operationId": "delivery_report",
        "summary": "per line item per UTC hour: decisions, impressions, clicks, spend; [from, to), default the last 24 h",
        "parameters": [query_param("from", "RFC 3339", json!({"type": "string", "format": "date-time"})),
                       query_param("to", "RFC 3339", json!({"type": "string", "format": "date-time"}))],
        "responses": ok("200", "the report", schema_ref("DeliveryReport"), &[("400", "bad time range")])}}));
    paths.insert("/api/v1/serving/stats".into(), json!({"get": {"tags": ["operations"], "operationId": "serving_stats",
        "summary": "the serving role's counters (admin)", "responses": ok("200", "counters", json!({"type": "object"}), &[("403", "admin only")])}}));
    json!({
        "openapi": "3.1.0",
        "info": {"title": "AdPlatform API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Management API of AdPlatform. Money is integer micros; times are UTC (RFC 3339). Errors: {\"error\": {\"code\", \"message\", \"field\"}}."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an API key: `Authorization: Bearer adp_...`"}}
        },
        "security": [{"bearer": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 50, "expected many references, got {}", all.len());
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").expect("local ref");
            assert!(schemas.contains_key(name), "dangling reference {r}");
        }
    }

    #[test]
    fn every_resource_has_its_five_operations() {
        let doc = document();
        for res in RESOURCES {
            let base = format!("/api/v1/{}", res.segment);
            assert!(doc["paths"][&base]["post"].is_object() && doc["paths"][&base]["get"].is_object(), "{base}");
            let one = format!("{base}/{{id}}");
            assert!(doc["paths"][&one]["get"].is_object() && doc["paths"][&one]["patch"].is_object(), "{one}");
            assert!(doc["paths"][format!("{one}/archive")]["post"].is_object());
        }
        // The targeting grammar is documented, with its attributes.
        let expr = serde_json::to_string(&doc["components"]["schemas"]["Expr"]).expect("json");
        for attr in ["ip_cidr", "daypart", "key_value", "device_type", "not"] {
            assert!(expr.contains(attr), "Expr schema lacks {attr}");
        }
    }
}
