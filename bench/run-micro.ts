import { micro } from './micro';
micro(process.argv.includes('--quick')).then(
  (figures) => console.log(JSON.stringify(figures, null, 2)),
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
