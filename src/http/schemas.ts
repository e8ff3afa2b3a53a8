import { Type } from '@sinclair/typebox';

export const ErrorSchema = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.String({ description: 'A TALLY_* error code (docs/errors.md)' }),
    error: Type.String(),
    message: Type.String(),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          index: Type.Integer(),
          field: Type.String(),
          code: Type.String(),
          message: Type.String(),
        }),
      ),
    ),
  },
  { description: 'Tally error' },
);
