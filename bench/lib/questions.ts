/** The questions of the query benchmark: REST path, gRPC method and parameters besides the range. */
export interface Question {
  name: string;
  path: string;
  rpc: string;
  params: Record<string, string>;
}

export function questions(days: number): Question[] {
  return [
    { name: `summary, ${days} days`, path: '/v1/stats/summary', rpc: 'GetSummary', params: {} },
    {
      name: `timeseries events/hour, ${days} days`,
      path: '/v1/stats/timeseries',
      rpc: 'GetTimeseries',
      params: { metric: 'events', interval: 'hour' },
    },
    {
      name: `timeseries page_views/day Asia/Kolkata, ${days} days`,
      path: '/v1/stats/timeseries',
      rpc: 'GetTimeseries',
      params: { metric: 'page_views', interval: 'day', tz: 'Asia/Kolkata' },
    },
    {
      name: `timeseries unique_users/day, ${days} days`,
      path: '/v1/stats/timeseries',
      rpc: 'GetTimeseries',
      params: { metric: 'unique_users', interval: 'day' },
    },
    {
      name: `top-pages, ${days} days`,
      path: '/v1/stats/top-pages',
      rpc: 'GetTopPages',
      params: { limit: '10' },
    },
  ];
}

/** The question's parameters for the `days` days ending at `to`. */
export function questionParams(q: Question, days: number, to: number): Record<string, string> {
  return {
    ...q.params,
    from: new Date(to - days * 86_400_000).toISOString(),
    to: new Date(to).toISOString(),
  };
}
