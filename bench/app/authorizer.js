'use strict';
// The benchmark's Lambda authorizer (TOKEN, REST shape): allows every request that carries a
// token, with a small context, as a typical authorizer does after checking it.
exports.handler = async (event) => ({
  principalId: 'bench',
  policyDocument: {
    Version: '2012-10-17',
    Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: 'arn:aws:execute-api:*:*:*/*/GET/*' }],
  },
  context: { tenant: 'bench', token: event.authorizationToken.length },
});
