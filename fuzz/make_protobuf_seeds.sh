#!/usr/bin/env bash
# Writes the seed corpus of decoder_protobuf_fuzz: streamrec.v1.PurchaseEvent messages in binary
# encoding, from protobuf text format via `protoc --encode` (the generated files are committed;
# run this again after changing proto/streamrec/v1/events.proto).
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus/decoder_protobuf
mkdir -p "$out"
encode() {  # name, text-format message
  printf '%s\n' "$2" | protoc --encode=streamrec.v1.PurchaseEvent -Iproto \
    proto/streamrec/v1/events.proto > "$out/$1.pb"
}
encode full 'event_id: "536365-1" customer_id: "17850" item_id: "85123A"
  event_time_ms: 1291191960000 quantity: 6 unit_price: 2.55 amount: 15.3 discount: 0.5
  channel: " Online " currency: "GBP"'
encode minimal 'customer_id: "6281234567890" item_id: "PKG_10GB_30D" event_time_ms: 1682936100000'
encode no_time 'customer_id: "c" item_id: "i"'
encode negative 'customer_id: " c " item_id: "i" event_time_ms: 1323435000000 quantity: -2
  amount: -5 unit_price: 0'
encode out_of_range 'customer_id: "c" item_id: "i" event_time_ms: -1 quantity: inf
  discount: nan'
encode empty_ids 'event_id: "e" customer_id: "   " item_id: "" event_time_ms: 4102444800001'
