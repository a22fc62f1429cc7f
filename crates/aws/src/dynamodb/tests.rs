//! Operation tests through [`DynamoDb::handle`] on a real SQLite file.

use super::*;
use serde_json::json;

struct Db {
    db: DynamoDb,
    _dir: tempfile::TempDir,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = DynamoDb::open(&dir.path().join("aws.db")).unwrap();
        Self { db, _dir: dir }
    }

    fn call(&self, op: &str, body: Json) -> Result<Json> {
        let target = if matches!(op, "ListStreams" | "DescribeStream" | "GetShardIterator" | "GetRecords") {
            format!("{STREAMS_TARGET_PREFIX}{op}")
        } else {
            format!("{TARGET_PREFIX}{op}")
        };
        self.db.handle("app", "us-east-1", &target, body.to_string().as_bytes())
    }

    fn ok(&self, op: &str, body: Json) -> Json {
        self.call(op, body).unwrap_or_else(|e| panic!("{op}: {} {e}", e.code()))
    }
}

fn orders(db: &Db) {
    db.ok(
        "CreateTable",
        json!({
            "TableName": "orders",
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": "customer", "AttributeType": "S"},
                {"AttributeName": "n", "AttributeType": "N"},
                {"AttributeName": "status", "AttributeType": "S"}
            ],
            "KeySchema": [{"AttributeName": "customer", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
            "GlobalSecondaryIndexes": [{
                "IndexName": "by-status",
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"}
            }]
        }),
    );
}

fn put(db: &Db, customer: &str, n: &str, status: Option<&str>) {
    let mut item = json!({"customer": {"S": customer}, "n": {"N": n}, "total": {"N": "10"}});
    if let Some(s) = status {
        item["status"] = json!({"S": s});
    }
    db.ok("PutItem", json!({"TableName": "orders", "Item": item}));
}

#[test]
fn tables_are_created_described_listed_and_deleted() {
    let db = Db::new();
    orders(&db);
    let d = db.ok("DescribeTable", json!({"TableName": "orders"}));
    assert_eq!(d["Table"]["TableStatus"], "ACTIVE");
    assert_eq!(d["Table"]["GlobalSecondaryIndexes"][0]["IndexName"], "by-status");
    assert_eq!(
        d["Table"]["TableArn"],
        "arn:aws:dynamodb:us-east-1:000000000000:table/orders"
    );
    let again = db.call(
        "CreateTable",
        json!({
            "TableName": "orders", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "customer", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "customer", "KeyType": "HASH"}]
        }),
    );
    assert_eq!(again.unwrap_err().code(), "ResourceInUseException");
    assert_eq!(db.ok("ListTables", json!({}))["TableNames"], json!(["orders"]));
    db.ok("DeleteTable", json!({"TableName": "orders"}));
    let e = db.call("DescribeTable", json!({"TableName": "orders"})).unwrap_err();
    assert_eq!(
        e.type_name(),
        "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"
    );
    let e = db
        .call("CreateTable", json!({
            "TableName": "tab1", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"}, {"AttributeName": "b", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}]
        }))
        .unwrap_err();
    assert!(e.to_string().contains("Some AttributeDefinitions are not used"), "{e}");
}

#[test]
fn conditional_writes_and_return_values() {
    let db = Db::new();
    orders(&db);
    put(&db, "c1", "1", None);
    let e = db
        .call(
            "PutItem",
            json!({
                "TableName": "orders",
                "Item": {"customer": {"S": "c1"}, "n": {"N": "1"}},
                "ConditionExpression": "attribute_not_exists(customer)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD"
            }),
        )
        .unwrap_err();
    assert_eq!(
        e.type_name(),
        "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"
    );
    assert_eq!(e.body()["Item"]["total"], json!({"N": "10"}));
    let r = db.ok("UpdateItem", json!({
        "TableName": "orders",
        "Key": {"customer": {"S": "c1"}, "n": {"N": "1"}},
        "UpdateExpression": "SET total = total + :d, seen = if_not_exists(seen, :zero) ADD tags :t",
        "ConditionExpression": "total = :ten",
        "ExpressionAttributeValues": {":d": {"N": "2.5"}, ":zero": {"N": "0"}, ":t": {"SS": ["a"]}, ":ten": {"N": "10"}},
        "ReturnValues": "UPDATED_NEW"
    }));
    assert_eq!(
        r["Attributes"],
        json!({"total": {"N": "12.5"}, "seen": {"N": "0"}, "tags": {"SS": ["a"]}})
    );
    let r = db.ok(
        "DeleteItem",
        json!({
            "TableName": "orders", "Key": {"customer": {"S": "c1"}, "n": {"N": "1"}}, "ReturnValues": "ALL_OLD"
        }),
    );
    assert_eq!(r["Attributes"]["total"], json!({"N": "12.5"}));
    assert_eq!(
        db.ok(
            "GetItem",
            json!({"TableName": "orders", "Key": {"customer": {"S": "c1"}, "n": {"N": "1"}}})
        ),
        json!({})
    );
    let e = db
        .call(
            "GetItem",
            json!({"TableName": "orders", "Key": {"customer": {"S": "c1"}}}),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "The provided key element does not match the schema");
    let e = db
        .call(
            "PutItem",
            json!({"TableName": "orders", "Item": {"customer": {"N": "1"}, "n": {"N": "1"}}}),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "One or more parameter values were invalid: Type mismatch for key customer expected: S actual: N"
    );
    let e = db
        .call(
            "UpdateItem",
            json!({
                "TableName": "orders", "Key": {"customer": {"S": "c1"}, "n": {"N": "1"}},
                "UpdateExpression": "SET n = :v", "ExpressionAttributeValues": {":v": {"N": "2"}}
            }),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Cannot update attribute n. This attribute is part of the key"),
        "{e}"
    );
    let e = db
        .call(
            "PutItem",
            json!({
                "TableName": "orders", "Item": {"customer": {"S": "c1"}, "n": {"N": "1"}},
                "ExpressionAttributeValues": {":unused": {"N": "2"}}
            }),
        )
        .unwrap_err();
    assert!(e.to_string().contains("unused in expressions: keys: {:unused}"), "{e}");
}

#[test]
fn query_orders_numbers_numerically_and_pages_exactly_once() {
    let db = Db::new();
    orders(&db);
    for n in ["-3", "2", "10", "9.5", "100", "1"] {
        put(&db, "c1", n, Some(if n == "10" { "open" } else { "done" }));
    }
    put(&db, "c2", "5", Some("open"));
    let mut seen = Vec::new();
    let mut start: Option<Json> = None;
    let mut pages = 0;
    loop {
        let mut q = json!({
            "TableName": "orders",
            "KeyConditionExpression": "customer = :c",
            "ExpressionAttributeValues": {":c": {"S": "c1"}},
            "Limit": 4
        });
        if let Some(s) = start.take() {
            q["ExclusiveStartKey"] = s;
        }
        let r = db.ok("Query", q);
        pages += 1;
        for i in r["Items"].as_array().unwrap() {
            seen.push(i["n"]["N"].as_str().unwrap().to_string());
        }
        match r.get("LastEvaluatedKey") {
            Some(k) => start = Some(k.clone()),
            None => break,
        }
    }
    assert_eq!(seen, ["-3", "1", "2", "9.5", "10", "100"]);
    assert_eq!(pages, 2);
    let r = db.ok(
        "Query",
        json!({
            "TableName": "orders",
            "KeyConditionExpression": "customer = :c AND n BETWEEN :lo AND :hi",
            "FilterExpression": "total > :t",
            "ExpressionAttributeValues": {":c": {"S": "c1"}, ":lo": {"N": "2"}, ":hi": {"N": "10"}, ":t": {"N": "5"}},
            "ScanIndexForward": false
        }),
    );
    let ns: Vec<&str> = r["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["n"]["N"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["10", "9.5", "2"]);
    let r = db.ok(
        "Query",
        json!({
            "TableName": "orders", "IndexName": "by-status",
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": "open"}}
        }),
    );
    assert_eq!(r["Count"], 2);
    // In the index's sort key order; KEYS_ONLY: the table's and the index's keys.
    assert_eq!(
        r["Items"][0],
        json!({"customer": {"S": "c2"}, "n": {"N": "5"}, "status": {"S": "open"}})
    );
    assert_eq!(
        r["Items"][1],
        json!({"customer": {"S": "c1"}, "n": {"N": "10"}, "status": {"S": "open"}})
    );
    let r = db.ok(
        "Query",
        json!({
            "TableName": "orders", "Select": "COUNT",
            "KeyConditionExpression": "customer = :c AND n < :v",
            "ExpressionAttributeValues": {":c": {"S": "c1"}, ":v": {"N": "2"}}
        }),
    );
    assert_eq!(r["Count"], 2);
    assert!(r.get("Items").is_none());
    let e = db
        .call(
            "Query",
            json!({
                "TableName": "orders",
                "KeyConditionExpression": "n = :v",
                "ExpressionAttributeValues": {":v": {"N": "2"}}
            }),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "Query condition missed key schema element: customer");
    let r = db.ok("Scan", json!({"TableName": "orders", "FilterExpression": "customer = :c", "ExpressionAttributeValues": {":c": {"S": "c2"}}}));
    assert_eq!((r["Count"].as_u64(), r["ScannedCount"].as_u64()), (Some(1), Some(7)));
}

#[test]
fn transactions_are_all_or_nothing() {
    let db = Db::new();
    orders(&db);
    put(&db, "c1", "1", None);
    let e = db
        .call(
            "TransactWriteItems",
            json!({"TransactItems": [
                {"Put": {"TableName": "orders", "Item": {"customer": {"S": "c9"}, "n": {"N": "1"}}}},
                {"Update": {"TableName": "orders", "Key": {"customer": {"S": "c1"}, "n": {"N": "1"}},
                            "UpdateExpression": "SET total = :z", "ConditionExpression": "total = :wrong",
                            "ExpressionAttributeValues": {":z": {"N": "0"}, ":wrong": {"N": "99"}}}}
            ]}),
        )
        .unwrap_err();
    assert_eq!(e.code(), "TransactionCanceledException");
    assert_eq!(
        e.body()["CancellationReasons"],
        json!([{"Code": "None"}, {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}])
    );
    assert_eq!(
        db.ok(
            "GetItem",
            json!({"TableName": "orders", "Key": {"customer": {"S": "c9"}, "n": {"N": "1"}}})
        ),
        json!({})
    );
    db.ok("TransactWriteItems", json!({"TransactItems": [
        {"Put": {"TableName": "orders", "Item": {"customer": {"S": "c9"}, "n": {"N": "1"}}}},
        {"ConditionCheck": {"TableName": "orders", "Key": {"customer": {"S": "c1"}, "n": {"N": "1"}}, "ConditionExpression": "attribute_exists(total)"}}
    ]}));
    let r = db.ok(
        "TransactGetItems",
        json!({"TransactItems": [
            {"Get": {"TableName": "orders", "Key": {"customer": {"S": "c9"}, "n": {"N": "1"}}}},
            {"Get": {"TableName": "orders", "Key": {"customer": {"S": "zz"}, "n": {"N": "1"}}}}
        ]}),
    );
    assert_eq!(r["Responses"][0]["Item"]["customer"], json!({"S": "c9"}));
    assert_eq!(r["Responses"][1], json!({}));
    let e = db
        .call(
            "TransactWriteItems",
            json!({"TransactItems": [
                {"Put": {"TableName": "orders", "Item": {"customer": {"S": "c9"}, "n": {"N": "1"}}}},
                {"Delete": {"TableName": "orders", "Key": {"customer": {"S": "c9"}, "n": {"N": "1"}}}}
            ]}),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Transaction request cannot include multiple operations on one item"
    );
}

#[test]
fn batches_and_ttl() {
    let db = Db::new();
    orders(&db);
    let puts: Vec<Json> = (0..25)
        .map(|i| json!({"PutRequest": {"Item": {"customer": {"S": "b"}, "n": {"N": i.to_string()}}}}))
        .collect();
    db.ok("BatchWriteItem", json!({"RequestItems": {"orders": puts}}));
    let too_many: Vec<Json> = (0..26)
        .map(|i| json!({"PutRequest": {"Item": {"customer": {"S": "b"}, "n": {"N": i.to_string()}}}}))
        .collect();
    assert_eq!(
        db.call("BatchWriteItem", json!({"RequestItems": {"orders": too_many}}))
            .unwrap_err()
            .code(),
        "ValidationException"
    );
    let keys: Vec<Json> = (0..3)
        .map(|i| json!({"customer": {"S": "b"}, "n": {"N": i.to_string()}}))
        .collect();
    let r = db.ok(
        "BatchGetItem",
        json!({"RequestItems": {"orders": {"Keys": keys, "ProjectionExpression": "n"}}}),
    );
    assert_eq!(r["Responses"]["orders"].as_array().unwrap().len(), 3);
    assert_eq!(r["Responses"]["orders"][0], json!({"n": {"N": "0"}}));

    db.ok(
        "UpdateTimeToLive",
        json!({"TableName": "orders", "TimeToLiveSpecification": {"Enabled": true, "AttributeName": "exp"}}),
    );
    assert_eq!(
        db.ok("DescribeTimeToLive", json!({"TableName": "orders"}))["TimeToLiveDescription"]["TimeToLiveStatus"],
        "ENABLED"
    );
    db.ok(
        "PutItem",
        json!({"TableName": "orders", "Item": {"customer": {"S": "t"}, "n": {"N": "1"}, "exp": {"N": "1000"}}}),
    );
    db.ok(
        "PutItem",
        json!({"TableName": "orders", "Item": {"customer": {"S": "t"}, "n": {"N": "2"}, "exp": {"N": "99999999999"}}}),
    );
    let r = db.ok("Query", json!({"TableName": "orders", "KeyConditionExpression": "customer = :c", "ExpressionAttributeValues": {":c": {"S": "t"}}}));
    assert_eq!(r["Count"], 1, "the expired item is not returned");
    assert_eq!(
        db.ok(
            "GetItem",
            json!({"TableName": "orders", "Key": {"customer": {"S": "t"}, "n": {"N": "1"}}})
        ),
        json!({})
    );
    assert_eq!(db.db.sweep_now().unwrap(), 1);
}

#[test]
fn gsi_added_by_update_table_is_backfilled() {
    let db = Db::new();
    orders(&db);
    put(&db, "c1", "1", None);
    db.ok(
        "PutItem",
        json!({"TableName": "orders", "Item": {"customer": {"S": "c1"}, "n": {"N": "2"}, "email": {"S": "a@x"}}}),
    );
    db.ok(
        "UpdateTable",
        json!({
            "TableName": "orders",
            "AttributeDefinitions": [{"AttributeName": "email", "AttributeType": "S"}],
            "GlobalSecondaryIndexUpdates": [{"Create": {
                "IndexName": "by-email",
                "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"}
            }}]
        }),
    );
    let r = db.ok(
        "Query",
        json!({
            "TableName": "orders", "IndexName": "by-email",
            "KeyConditionExpression": "email = :e", "ExpressionAttributeValues": {":e": {"S": "a@x"}}
        }),
    );
    assert_eq!(r["Count"], 1);
    assert_eq!(r["Items"][0]["n"], json!({"N": "2"}));
    let d = db.ok("DescribeTable", json!({"TableName": "orders"}));
    let by_email = d["Table"]["GlobalSecondaryIndexes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["IndexName"] == "by-email")
        .unwrap();
    assert_eq!(by_email["ItemCount"], 1);
}

#[test]
fn index_queries_page_backwards_exactly_once() {
    let db = Db::new();
    orders(&db);
    // Several items share an index sort key, so resuming needs the table key too.
    for (c, n) in [
        ("a", "1"),
        ("b", "1"),
        ("c", "1"),
        ("a", "2"),
        ("b", "3"),
        ("c", "3"),
        ("d", "0"),
    ] {
        put(&db, c, n, Some("open"));
    }
    let mut seen = Vec::new();
    let mut start: Option<Json> = None;
    loop {
        let mut q = json!({
            "TableName": "orders", "IndexName": "by-status", "ScanIndexForward": false, "Limit": 2,
            "KeyConditionExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": "open"}}
        });
        if let Some(s) = start.take() {
            q["ExclusiveStartKey"] = s;
        }
        let r = db.ok("Query", q);
        for i in r["Items"].as_array().unwrap() {
            seen.push(format!(
                "{}{}",
                i["customer"]["S"].as_str().unwrap(),
                i["n"]["N"].as_str().unwrap()
            ));
        }
        match r.get("LastEvaluatedKey") {
            Some(k) => {
                assert!(k.get("status").is_some() && k.get("customer").is_some(), "{k}");
                start = Some(k.clone());
            }
            None => break,
        }
    }
    assert_eq!(seen, ["c3", "b3", "a2", "c1", "b1", "a1", "d0"]);
}

#[test]
fn limits_and_key_checks() {
    let db = Db::new();
    orders(&db);
    let big = "x".repeat(400 * 1024);
    let e = db
        .call(
            "PutItem",
            json!({"TableName": "orders", "Item": {"customer": {"S": "c"}, "n": {"N": "1"}, "big": {"S": big}}}),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "Item size has exceeded the maximum allowed size");
    let e = db
        .call(
            "PutItem",
            json!({"TableName": "orders", "Item": {"customer": {"S": ""}, "n": {"N": "1"}}}),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot contain an empty string value. Key: customer"),
        "{e}"
    );
    let e = db
        .call("PutItem", json!({"TableName": "orders", "Item": {"n": {"N": "1"}}}))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "One or more parameter values were invalid: Missing the key customer in the item"
    );
    let keys: Vec<Json> = (0..101)
        .map(|i| json!({"customer": {"S": "b"}, "n": {"N": i.to_string()}}))
        .collect();
    let e = db
        .call("BatchGetItem", json!({"RequestItems": {"orders": {"Keys": keys}}}))
        .unwrap_err();
    assert_eq!(e.to_string(), "Too many items requested for the BatchGetItem call");
    let e = db
        .call("PutItem", json!({"TableName": "nope", "Item": {}}))
        .unwrap_err();
    assert_eq!(e.code(), "ResourceNotFoundException");
    let e = db.call("ExecuteStatement", json!({})).unwrap_err();
    assert_eq!(e.type_name(), "com.amazon.coral.service#UnknownOperationException");
    let e = db
        .call(
            "PutItem",
            json!({"TableName": "orders", "Item": {"customer": {"S": "c"}, "n": {"N": "1"}}, "Expected": {}}),
        )
        .unwrap_err();
    assert!(e.to_string().contains("legacy parameter Expected"), "{e}");
    let e = db
        .db
        .handle("app", "us-east-1", "DynamoDB_20120810.PutItem", b"{not json")
        .unwrap_err();
    assert_eq!(e.code(), "SerializationException");
}

#[test]
fn scans_page_and_split_into_segments() {
    let db = Db::new();
    orders(&db);
    for i in 0..30 {
        put(&db, &format!("c{}", i % 7), &i.to_string(), None);
    }
    let mut seen = Vec::new();
    let mut start: Option<Json> = None;
    loop {
        let mut q = json!({"TableName": "orders", "Limit": 7});
        if let Some(s) = start.take() {
            q["ExclusiveStartKey"] = s;
        }
        let r = db.ok("Scan", q);
        for i in r["Items"].as_array().unwrap() {
            seen.push(i["n"]["N"].as_str().unwrap().parse::<u32>().unwrap());
        }
        match r.get("LastEvaluatedKey") {
            Some(k) => start = Some(k.clone()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, (0..30).collect::<Vec<_>>());
    let mut total = 0;
    for segment in 0..3 {
        let r = db.ok(
            "Scan",
            json!({"TableName": "orders", "Segment": segment, "TotalSegments": 3}),
        );
        total += r["Count"].as_u64().unwrap();
    }
    assert_eq!(total, 30, "segments split the table without overlap");
}

#[test]
fn local_secondary_indexes_order_by_their_sort_key() {
    let db = Db::new();
    db.ok("CreateTable", json!({
        "TableName": "msgs", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "room", "AttributeType": "S"},
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "at", "AttributeType": "N"}
        ],
        "KeySchema": [{"AttributeName": "room", "KeyType": "HASH"}, {"AttributeName": "id", "KeyType": "RANGE"}],
        "LocalSecondaryIndexes": [{
            "IndexName": "by-time",
            "KeySchema": [{"AttributeName": "room", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["text"]}
        }]
    }));
    for (id, at) in [("a", "30"), ("b", "10"), ("c", "20")] {
        db.ok(
            "PutItem",
            json!({"TableName": "msgs", "Item": {
                "room": {"S": "r"}, "id": {"S": id}, "at": {"N": at}, "text": {"S": id}, "secret": {"S": "s"}
            }}),
        );
    }
    let r = db.ok(
        "Query",
        json!({
            "TableName": "msgs", "IndexName": "by-time",
            "KeyConditionExpression": "room = :r AND at >= :t",
            "ExpressionAttributeValues": {":r": {"S": "r"}, ":t": {"N": "15"}}
        }),
    );
    let ids: Vec<&str> = r["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"]["S"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c", "a"]);
    assert!(
        r["Items"][0].get("secret").is_none(),
        "INCLUDE projects only the named attributes"
    );
    let r = db.ok(
        "Query",
        json!({
            "TableName": "msgs", "IndexName": "by-time", "Select": "ALL_ATTRIBUTES",
            "KeyConditionExpression": "room = :r", "ExpressionAttributeValues": {":r": {"S": "r"}}
        }),
    );
    assert_eq!(
        r["Items"][0]["secret"],
        json!({"S": "s"}),
        "an LSI reads the whole item when asked"
    );
}

#[test]
fn streams_record_changes_in_order_with_images() {
    let db = Db::new();
    db.ok(
        "CreateTable",
        json!({
            "TableName": "users", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        }),
    );
    let d = db.ok("DescribeTable", json!({"TableName": "users"}));
    let arn = d["Table"]["LatestStreamArn"].as_str().unwrap().to_string();
    assert!(
        arn.starts_with("arn:aws:dynamodb:us-east-1:000000000000:table/users/stream/"),
        "{arn}"
    );
    let key = json!({"id": {"S": "u1"}});
    db.ok(
        "PutItem",
        json!({"TableName": "users", "Item": {"id": {"S": "u1"}, "n": {"N": "1"}}}),
    );
    db.ok("UpdateItem", json!({"TableName": "users", "Key": key, "UpdateExpression": "SET n = :v", "ExpressionAttributeValues": {":v": {"N": "2"}}}));
    // Unchanged: no record.
    db.ok("UpdateItem", json!({"TableName": "users", "Key": key, "UpdateExpression": "SET n = :v", "ExpressionAttributeValues": {":v": {"N": "2"}}}));
    // Cancelled: no record.
    let _ = db.call("TransactWriteItems", json!({"TransactItems": [
        {"Put": {"TableName": "users", "Item": {"id": {"S": "u2"}}}},
        {"ConditionCheck": {"TableName": "users", "Key": key, "ConditionExpression": "attribute_not_exists(id)"}}
    ]})).unwrap_err();
    db.ok("DeleteItem", json!({"TableName": "users", "Key": key}));

    let s = db.ok("DescribeStream", json!({"StreamArn": arn}));
    let shard = s["StreamDescription"]["Shards"][0]["ShardId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s["StreamDescription"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
    assert_eq!(db.ok("ListStreams", json!({}))["Streams"][0]["StreamArn"], json!(arn));
    let it = db.ok(
        "GetShardIterator",
        json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    );
    let r = db.ok("GetRecords", json!({"ShardIterator": it["ShardIterator"], "Limit": 2}));
    let names: Vec<&str> = r["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY"]);
    let modify = &r["Records"][1]["dynamodb"];
    assert_eq!(modify["OldImage"]["n"], json!({"N": "1"}));
    assert_eq!(modify["NewImage"]["n"], json!({"N": "2"}));
    assert_eq!(modify["Keys"], key);
    let r2 = db.ok("GetRecords", json!({"ShardIterator": r["NextShardIterator"]}));
    let rest: Vec<&str> = r2["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(rest, ["REMOVE"]);
    assert!(r2["Records"][0]["dynamodb"].get("NewImage").is_none());
    let seqs: Vec<String> = r["Records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(r2["Records"].as_array().unwrap())
        .map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(seqs, sorted, "sequence numbers increase");
    let latest = db.ok(
        "GetShardIterator",
        json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "LATEST"}),
    );
    assert_eq!(
        db.ok("GetRecords", json!({"ShardIterator": latest["ShardIterator"]}))["Records"],
        json!([])
    );

    let events = db.db.read_stream("app", "us-east-1", "users", 0, 10).unwrap().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].1["eventSourceARN"], json!(arn));
    assert_eq!(events[0].1["eventSource"], "aws:dynamodb");
    assert!(db.db.read_stream("app", "us-east-1", "nope", 0, 10).unwrap().is_none());

    // TTL deletions are REMOVE records by the service.
    db.ok(
        "UpdateTimeToLive",
        json!({"TableName": "users", "TimeToLiveSpecification": {"Enabled": true, "AttributeName": "exp"}}),
    );
    db.ok(
        "PutItem",
        json!({"TableName": "users", "Item": {"id": {"S": "old"}, "exp": {"N": "1"}}}),
    );
    assert_eq!(db.db.sweep_now().unwrap(), 1);
    let events = db
        .db
        .read_stream("app", "us-east-1", "users", events[2].0, 10)
        .unwrap()
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].1["eventName"], "REMOVE");
    assert_eq!(events[1].1["userIdentity"]["principalId"], "dynamodb.amazonaws.com");

    let e = db.call("UpdateTable", json!({"TableName": "users", "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "KEYS_ONLY"}})).unwrap_err();
    assert!(e.to_string().contains("already has an enabled stream"), "{e}");
    db.ok(
        "UpdateTable",
        json!({"TableName": "users", "StreamSpecification": {"StreamEnabled": false}}),
    );
    assert_eq!(
        db.call("DescribeStream", json!({"StreamArn": arn})).unwrap_err().code(),
        "ResourceNotFoundException"
    );
}

#[test]
fn concurrent_writers_lose_nothing() {
    let db = Db::new();
    orders(&db);
    let key = json!({"customer": {"S": "counter"}, "n": {"N": "0"}});
    let winners = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    db.ok(
                        "UpdateItem",
                        json!({
                            "TableName": "orders", "Key": key,
                            "UpdateExpression": "ADD hits :one", "ExpressionAttributeValues": {":one": {"N": "1"}}
                        }),
                    );
                }
                let first = db.call(
                    "PutItem",
                    json!({
                        "TableName": "orders", "Item": {"customer": {"S": "once"}, "n": {"N": "0"}},
                        "ConditionExpression": "attribute_not_exists(customer)"
                    }),
                );
                match first {
                    Ok(_) => {
                        winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(e) => assert_eq!(e.code(), "ConditionalCheckFailedException"),
                }
            });
        }
    });
    let item = db.ok("GetItem", json!({"TableName": "orders", "Key": key}));
    assert_eq!(item["Item"]["hits"], json!({"N": "400"}));
    assert_eq!(winners.into_inner(), 1, "exactly one conditional create wins");
}
