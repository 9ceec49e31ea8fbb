// The AWS SDK for JavaScript v3 against sluice: create, describe, update, tag and delete a
// delivery stream, then one call signed with a wrong secret. Prints one JSON line of results;
// tests/test_js_sdk.py checks them.
import {
  FirehoseClient, CreateDeliveryStreamCommand, DescribeDeliveryStreamCommand, UpdateDestinationCommand,
  TagDeliveryStreamCommand, ListTagsForDeliveryStreamCommand, PutRecordBatchCommand, DeleteDeliveryStreamCommand,
  ListDeliveryStreamsCommand,
} from "@aws-sdk/client-firehose";

const [endpoint, keyId, secret] = process.argv.slice(2);
const client = (s) => new FirehoseClient({
  endpoint, region: "us-east-1", maxAttempts: 1, credentials: { accessKeyId: keyId, secretAccessKey: s },
});
const fh = client(secret);
const out = {};
const name = "js-stream";
out.arn = (await fh.send(new CreateDeliveryStreamCommand({
  DeliveryStreamName: name,
  ExtendedS3DestinationConfiguration: {
    RoleARN: "arn:aws:iam::123456789012:role/firehose", BucketARN: "arn:aws:s3:::js-bucket",
    Prefix: "js/", BufferingHints: { SizeInMBs: 1, IntervalInSeconds: 1 }, CompressionFormat: "UNCOMPRESSED",
  },
}))).DeliveryStreamARN;
let d = (await fh.send(new DescribeDeliveryStreamCommand({ DeliveryStreamName: name }))).DeliveryStreamDescription;
out.status = d.DeliveryStreamStatus;
out.created_is_date = d.CreateTimestamp instanceof Date;
await fh.send(new UpdateDestinationCommand({
  DeliveryStreamName: name, CurrentDeliveryStreamVersionId: d.VersionId, DestinationId: d.Destinations[0].DestinationId,
  ExtendedS3DestinationUpdate: { Prefix: "js-v2/" },
}));
d = (await fh.send(new DescribeDeliveryStreamCommand({ DeliveryStreamName: name }))).DeliveryStreamDescription;
out.version = d.VersionId;
out.prefix = d.Destinations[0].ExtendedS3DestinationDescription.Prefix;
await fh.send(new TagDeliveryStreamCommand({ DeliveryStreamName: name, Tags: [{ Key: "sdk", Value: "js" }] }));
out.tags = (await fh.send(new ListTagsForDeliveryStreamCommand({ DeliveryStreamName: name }))).Tags;
const put = await fh.send(new PutRecordBatchCommand({
  DeliveryStreamName: name, Records: [{ Data: new TextEncoder().encode("one\n") }, { Data: new TextEncoder().encode("two\n") }],
}));
out.failed = put.FailedPutCount;
try {
  await client("wrong-secret-0123456789").send(new ListDeliveryStreamsCommand({}));
  out.wrong_secret = "accepted";
} catch (e) {
  out.wrong_secret = e.name;
}
await fh.send(new DeleteDeliveryStreamCommand({ DeliveryStreamName: name }));
console.log(JSON.stringify(out));
