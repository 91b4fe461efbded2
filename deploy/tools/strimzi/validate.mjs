// Validates Strimzi resources against the schemas generated from Strimzi's CRDs
// (@kubernetes-models/strimzi-kafka-operator, Strimzi 0.49). Reads a JSON array of
// objects on stdin; prints one line per invalid object and exits 1 if there is any.
import { KafkaTopic as KafkaTopicV1 } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1/KafkaTopic";
import { KafkaTopic as KafkaTopicV1beta2 } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2/KafkaTopic";

const models = {
  "kafka.strimzi.io/v1/KafkaTopic": KafkaTopicV1,
  "kafka.strimzi.io/v1beta2/KafkaTopic": KafkaTopicV1beta2,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
let failures = 0;
for (const object of JSON.parse(input)) {
  const name = `${object.kind}/${object.metadata?.name}`;
  const Model = models[`${object.apiVersion}/${object.kind}`];
  if (!Model) {
    console.log(`${name}: no schema for ${object.apiVersion} ${object.kind}`);
    failures++;
    continue;
  }
  try {
    new Model(object).validate();
  } catch (error) {
    console.log(`${name}: ${error.message}`);
    failures++;
  }
}
process.exit(failures ? 1 : 0);
