'use strict';
// GetReport: GET /reports/{date}  (?format=csv for the CSV)
const blobs = require('../lib/gust-blobs');

exports.handler = async (event) => {
  const date = event.pathParameters.date;
  const csv = (event.queryStringParameters || {}).format === 'csv';
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) return { statusCode: 400, body: JSON.stringify({ message: 'date must be YYYY-MM-DD' }) };
  const data = await blobs.get(`reports/${date}.${csv ? 'csv' : 'json'}`);
  if (!data) return { statusCode: 404, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: `no report for ${date}` }) };
  return { statusCode: 200, headers: { 'content-type': csv ? 'text/csv' : 'application/json' }, body: data.toString() };
};
