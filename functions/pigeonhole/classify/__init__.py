"""Classification: input contract, routing, the batch service and the Lambda handler."""
