//! System tests: a real Gust on 127.0.0.1:0 with real function processes (node, python3,
//! Rust binaries built on the official lambda_runtime / lambda_http crates).

mod support;

mod authorizers;
mod aws_sdk;
mod cgroup_v2;
mod console;
mod contract;
mod control_plane;
mod conventions;
mod counters;
mod crashloop;
mod deploy;
mod dynamodb;
mod dynamodb_functions;
mod dynamodb_streams;
mod events;
mod failures;
mod freezer;
mod gateway;
mod integration;
mod limits;
mod mqtt;
mod network;
mod observability;
mod output;
mod rabbitmq;
mod runtimes;
mod sandbox;
mod scaling;
mod schedules;
mod serverless;
mod sources;
mod users;
mod validate;
