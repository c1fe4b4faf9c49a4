import { gcsFixture } from "./fixtures.ts";
import { describeStoreContract } from "./store-contract.ts";

describeStoreContract(gcsFixture);

// fake-gcs-server accepts every request whatever its credentials, and a real key file would send the
// client to Google's token endpoint; GCS's 401/403 classification is shown against a refusing HTTP
// server in error-classification.test.ts. So there is no wrong-credentials case for GCS here.
