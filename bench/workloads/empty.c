/* empty.c - workload S of bench/run: does nothing; measures start-up and
 * exit cost only (dynamic loading of the tracer, session set-up, teardown). */
int main(void)
{
    return 0;
}
